#include <fakequant/scheme/presets.hpp>
int main() { fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> q; }
