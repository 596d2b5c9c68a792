#include <random>

#include <fakequant/convert/convert.hpp>
// A fixed affine weight quantizer cannot deploy (the integer kernels take symmetric weights); a
// learned one is checked at run time, its zero point being a learned value.
int main() {
  std::mt19937 rng(1);
  using AffineWeights = fq::FakeQuantize<fq::QScheme<fq::Int8, fq::Affine, fq::PerChannel<0>>,
                                         fq::PerChannelMinMaxObserver>;
  fq::QLinear<AffineWeights> fc(4, 2, rng);
  fq::convert(fc, fq::ActQParams{0.1f, 0});
}
