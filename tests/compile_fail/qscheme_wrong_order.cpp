// Mapping and granularity swapped: one static_assert naming the order, and no other error.
#include <fakequant/fakequant.hpp>
using S = fq::QScheme<fq::Int8, fq::PerChannel<0>, fq::Symmetric>;
int main() {
  fq::FakeQuantizer<S> q(4);
  (void)q;
}
