#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/scheme/presets.hpp>
int main() { fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric, fq::MinMaxObserver> m; }
