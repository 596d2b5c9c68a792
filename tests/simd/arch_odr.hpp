// SPDX-License-Identifier: MIT
// The interface between the translation units of fq_tests_simd_arch_odr: plain data only, so
// that main (baseline x86-64) needs no code compiled for AVX-512 to read the results.
#ifndef FQ_TESTS_SIMD_ARCH_ODR_HPP_
#define FQ_TESTS_SIMD_ARCH_ODR_HPP_

#include <cstdint>

#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/scheme/range.hpp>
#include <fakequant/simd/isa.hpp>

namespace fq_odr {

inline constexpr int kRows = 20;  // the per-channel tensor is [kRows, kCols]
inline constexpr int kCols = 50;
inline constexpr int kN = kRows * kCols;       // every tensor has kN elements
inline constexpr int kWords = (kN + 63) / 64;  // mask words of a kN-element tensor

struct Inputs {
  float x[kN];        // finite (observers and LSQ)
  float special[kN];  // x with NaN, +-Inf and -0 in places (fake-quant and quantize calls)
  float dy[kN];
  float scale_rows[kRows];  // per channel along axis 0 (the [C, K] rows kernel)
  std::int32_t zero_rows[kRows];
  float scale_cols[kCols];  // per channel along axis 1 (the channel-walking kernel)
  std::int32_t zero_cols[kCols];
};

struct Outputs {
  float y_tensor[kN];  // fake_quantize_per_tensor, int32 zero point
  std::uint64_t mask_tensor[kWords];
  float dx_tensor[kN];  // fake_quantize_backward of dy with mask_tensor
  float y_rows[kN];     // fake_quantize_per_channel, axis 0
  std::uint64_t mask_rows[kWords];
  float y_cols[kN];  // fake_quantize_per_channel, axis 1
  std::uint64_t mask_cols[kWords];
  std::int8_t q[kN];                       // quantize_per_tensor
  float dq[kN];                            // dequantize_per_tensor(q)
  float min_tensor, max_tensor;            // MinMaxObserver
  float min_rows[kRows], max_rows[kRows];  // PerChannelMinMaxObserver, axis 0
  float y_lsq[kN];                         // LsqQuantizer<TorchLsq>::forward_backward
  float dx_lsq[kN];
  float lsq_scale_grad, lsq_zero_point_grad;
};

/// The type of fq::fake_quantize_per_tensor<TorchNumerics, Arch> called with view prvalues.
using FakeQuantizePerTensor = void (*)(fq::TensorView<const float>&&, fq::TensorView<float>&&,
                                       fq::Mask*, float, std::int32_t, fq::QuantRange, fq::Isa);

/// One translation unit's half: the name of its fq::DefaultArch and its
/// fake_quantize_per_tensor instantiation (constants, read without running the TU's code),
/// and the function that runs everything with the given Isa (kAuto or kScalar).
struct Half {
  const char* arch_name;
  FakeQuantizePerTensor fake_quantize_per_tensor;
  void (*run)(const Inputs& in, Outputs* out, fq::Isa isa);
};

extern const Half kBaseline;  // arch_odr_baseline.cpp, -march=x86-64
extern const Half kAvx512;    // arch_odr_avx512.cpp, -mavx512f -mavx512bw ...

}  // namespace fq_odr

#endif  // FQ_TESTS_SIMD_ARCH_ODR_HPP_
