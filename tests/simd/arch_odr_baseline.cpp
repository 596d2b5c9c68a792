// SPDX-License-Identifier: MIT
// The baseline half of fq_tests_simd_arch_odr: compiled with -march=x86-64 (SSE2, no AVX).
#include "simd/arch_odr_body.hpp"

namespace fq_odr {
constexpr Half kBaseline{fq::DefaultArch::name(), kFakeQuantizePerTensor, &run_half};
}  // namespace fq_odr
