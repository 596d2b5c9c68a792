// FP4 has neither Inf nor NaN: a non-saturating cast has nothing to overflow to.
#include <fakequant/format/minifloat.hpp>
int main() { return fq::round_to_format<fq::FloatE2M1, fq::FpNoSaturate>(7.0f) > 0.0f ? 0 : 1; }
