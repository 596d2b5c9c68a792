#include <fakequant/fake_quantize_module.hpp>
#include <fakequant/presets.hpp>
int main() { fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric, fq::MinMaxObserver> m; }
