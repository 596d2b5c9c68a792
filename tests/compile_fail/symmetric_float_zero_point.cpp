#include <fakequant/quantizer/fake_quantizer.hpp>
using S = fq::QScheme<fq::Int8, fq::Symmetric>::with_zero_point<fq::FloatZeroPoint>;
int main() { return sizeof(S); }
