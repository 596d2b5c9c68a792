#include <fakequant/quantizer/fake_quantizer.hpp>
struct RoundMyWay {};
int main() { return sizeof(fq::QScheme<fq::Int8, fq::Affine, fq::PerTensor, RoundMyWay>); }
