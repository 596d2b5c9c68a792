// SPDX-License-Identifier: MIT
// fq_tests_simd_arch_odr: the instruction set is part of every instantiation's type
// (include/fakequant/simd/arch.hpp). Two translation units, one compiled for AVX-512
// (arch_odr_avx512.cpp) and one for baseline x86-64 (arch_odr_baseline.cpp), run the same
// calls with the default Arch: fake_quantize_per_tensor / _per_channel (rows and
// channel-walking kernels) / _backward, quantize / dequantize, MinMax observers and LSQ. Checks:
//   - their fq::DefaultArch names differ, and their fake_quantize_per_tensor instantiations
//     are different functions (with one name for both, the linker would keep one copy: the
//     ODR violation that runs AVX-512 code from the baseline TU);
//   - every result is bit-identical between them and to the scalar reference (Isa::kScalar),
//     except LSQ's two gradient sums, whose SIMD accumulation order differs by design
//     (learnable/lsq_simd.hpp): those agree within 1e-5 of the sum of |summands|;
//   - the AVX-512 half runs only on a CPU that has AVX-512 F/BW/DQ/VL, AVX2 and FMA
//     (__builtin_cpu_supports); otherwise it is reported skipped and only the baseline half
//     runs (so the test also runs under `qemu-x86_64 -cpu Westmere`).
// This file is compiled for baseline x86-64 and reads the AVX-512 half's name and function
// pointer as constants, without running its code.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "simd/arch_odr.hpp"

namespace {

using fq_odr::kCols;
using fq_odr::kN;
using fq_odr::kRows;
using fq_odr::kWords;

int g_failures = 0;

void fail(const char* what, const char* half) {
  std::printf("FAILED: %s (%s)\n", what, half);
  ++g_failures;
}

template <class T>
void same_bits(const T* a, const T* b, int n, const char* what, const char* half) {
  for (int i = 0; i < n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0) {
      std::printf("  %s: first difference at element %d\n", what, i);
      fail(what, half);
      return;
    }
  }
}

void near(float a, float b, double tol, const char* what, const char* half) {
  if (!(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= tol)) {
    std::printf("  %s: %.9g vs %.9g (tolerance %.3g)\n", what, static_cast<double>(a),
                static_cast<double>(b), tol);
    fail(what, half);
  }
}

/// x: ties at half levels, values beyond the range, signed zeros, NaN and +-Inf, and a
/// deterministic spread; dy likewise, with a NaN and an Inf among ordinary gradients.
void make_inputs(fq_odr::Inputs& in) {
  std::uint32_t state = 12345u;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f;  // [0, 1)
  };
  for (int i = 0; i < kN; ++i) {
    const float u = next();
    if (i % 7 == 0)
      in.x[i] = (static_cast<float>(i % 300) - 150.0f + 0.5f) * 0.05f;  // ties
    else
      in.x[i] = (u - 0.5f) * 16.0f;  // within and beyond [-6.4, 6.35]
    in.dy[i] = (next() - 0.5f) * 2.0f;
  }
  // Observers refuse non-finite data: the specials go into a copy for the fake-quant calls.
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float specials[] = {
      std::numeric_limits<float>::quiet_NaN(), kInf, -kInf, -0.0f, 0.0f, 1e30f, -1e30f};
  for (int i = 0; i < kN; ++i) in.special[i] = i % 37 == 5 ? specials[(i / 37) % 7] : in.x[i];
  for (int c = 0; c < kRows; ++c) {
    in.scale_rows[c] = 0.01f + 0.004f * static_cast<float>(c);
    in.zero_rows[c] = c % 5 - 2;
  }
  for (int c = 0; c < kCols; ++c) {
    in.scale_cols[c] = 0.02f + 0.001f * static_cast<float>(c);
    in.zero_cols[c] = c % 3 == 0 ? 0 : c % 7 - 3;
  }
}

/// The whole comparison of one half's results against the reference's.
void compare(const fq_odr::Outputs& ref, const fq_odr::Outputs& got, const char* half) {
  same_bits(ref.y_tensor, got.y_tensor, kN, "fake_quantize_per_tensor y", half);
  same_bits(ref.mask_tensor, got.mask_tensor, kWords, "fake_quantize_per_tensor mask", half);
  same_bits(ref.dx_tensor, got.dx_tensor, kN, "fake_quantize_backward dx", half);
  same_bits(ref.y_rows, got.y_rows, kN, "fake_quantize_per_channel axis 0 y", half);
  same_bits(ref.mask_rows, got.mask_rows, kWords, "fake_quantize_per_channel axis 0 mask", half);
  same_bits(ref.y_cols, got.y_cols, kN, "fake_quantize_per_channel axis 1 y", half);
  same_bits(ref.mask_cols, got.mask_cols, kWords, "fake_quantize_per_channel axis 1 mask", half);
  same_bits(ref.q, got.q, kN, "quantize_per_tensor", half);
  same_bits(ref.dq, got.dq, kN, "dequantize_per_tensor", half);
  same_bits(&ref.min_tensor, &got.min_tensor, 1, "MinMaxObserver min", half);
  same_bits(&ref.max_tensor, &got.max_tensor, 1, "MinMaxObserver max", half);
  same_bits(ref.min_rows, got.min_rows, kRows, "PerChannelMinMaxObserver min", half);
  same_bits(ref.max_rows, got.max_rows, kRows, "PerChannelMinMaxObserver max", half);
  same_bits(ref.y_lsq, got.y_lsq, kN, "LSQ y", half);
  same_bits(ref.dx_lsq, got.dx_lsq, kN, "LSQ dx", half);
  // d scale sums dy * (level - z or the clipped bound), |terms| <= 3 * 128; d z sums dy * s.
  near(ref.lsq_scale_grad, got.lsq_scale_grad, 1e-5 * kN * 3.0 * 128.0, "LSQ d scale", half);
  near(ref.lsq_zero_point_grad, got.lsq_zero_point_grad, 1e-5 * kN, "LSQ d zero point", half);
}

bool cpu_runs_avx512_half() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

}  // namespace

int main() {
  const fq_odr::Half& base = fq_odr::kBaseline;
  const fq_odr::Half& wide = fq_odr::kAvx512;
  std::printf("baseline half: fq::DefaultArch = %s\nAVX-512 half:  fq::DefaultArch = %s\n",
              base.arch_name, wide.arch_name);
  if (std::strcmp(base.arch_name, wide.arch_name) == 0)
    fail("the two halves' fq::DefaultArch have one name", "both");
  if (base.fake_quantize_per_tensor == wide.fake_quantize_per_tensor)
    fail("the two halves share one fake_quantize_per_tensor instantiation (ODR)", "both");

  auto in = std::make_unique<fq_odr::Inputs>();
  make_inputs(*in);
  auto ref = std::make_unique<fq_odr::Outputs>();
  auto got = std::make_unique<fq_odr::Outputs>();
  base.run(*in, ref.get(), fq::Isa::kScalar);  // the scalar reference
  base.run(*in, got.get(), fq::Isa::kAuto);
  compare(*ref, *got, "baseline half");
  if (cpu_runs_avx512_half()) {
    auto got_wide = std::make_unique<fq_odr::Outputs>();
    wide.run(*in, got_wide.get(), fq::Isa::kAuto);
    compare(*ref, *got_wide, "AVX-512 half");
    std::printf("AVX-512 half: ran\n");
  } else {
    std::printf("AVX-512 half: skipped (this CPU lacks AVX-512 F/BW/DQ/VL, AVX2 or FMA)\n");
  }
  if (g_failures) {
    std::printf("%d check(s) FAILED\n", g_failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
