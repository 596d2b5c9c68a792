#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>
int main() { fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> q; }
