// SPDX-License-Identifier: MIT
// The AVX-512 half of fq_tests_simd_arch_odr: compiled with -mavx2 -mfma -mavx512f -mavx512bw
// -mavx512dq -mavx512vl. main runs it only on a CPU with those instruction sets.
#include "simd/arch_odr_body.hpp"

namespace fq_odr {
constexpr Half kAvx512{fq::DefaultArch::name(), kFakeQuantizePerTensor, &run_half};
}  // namespace fq_odr
