// A group-wise scheme given to the per-tensor/per-channel FakeQuantizer.
#include <fakequant/quantizer/fake_quantizer.hpp>
int main() {
  using S = fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32>>;
  fq::FakeQuantizer<S> q;
  (void)q;
}
