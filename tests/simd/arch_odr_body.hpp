// SPDX-License-Identifier: MIT
// The body both halves of fq_tests_simd_arch_odr compile, each with its own flags. Everything
// here has internal linkage (an unnamed namespace), so the two copies of the test's own code
// are never merged; the library's entry points are called as users call them, with the
// default Arch, which is what must make the library's instantiations distinct.
#ifndef FQ_TESTS_SIMD_ARCH_ODR_BODY_HPP_
#define FQ_TESTS_SIMD_ARCH_ODR_BODY_HPP_

#include <algorithm>
#include <cstdint>

#include <fakequant/fakequant.hpp>
#include <fakequant/kernels/dequantize.hpp>
#include <fakequant/kernels/quantize.hpp>

#include "simd/arch_odr.hpp"

namespace {

using fq::TensorView;

void copy_mask(const fq::Mask& m, std::uint64_t* out) {
  std::fill(out, out + fq_odr::kWords, std::uint64_t{0});
  std::copy(m.words().begin(), m.words().end(), out);
}

void run_half(const fq_odr::Inputs& in, fq_odr::Outputs* out, fq::Isa path) {
  using fq_odr::kCols;
  using fq_odr::kN;
  using fq_odr::kRows;
  const fq::QuantRange r8{-128, 127};
  const TensorView<const float> x(in.x, {kRows, kCols});
  const TensorView<const float> xs(in.special, {kRows, kCols});
  fq::Mask mask;
  fq::fake_quantize_per_tensor(xs, TensorView<float>(out->y_tensor, {kRows, kCols}), &mask, 0.05f,
                               3, r8, path);
  copy_mask(mask, out->mask_tensor);
  fq::fake_quantize_backward(TensorView<const float>(in.dy, {kRows, kCols}), mask,
                             TensorView<float>(out->dx_tensor, {kRows, kCols}), path);
  fq::fake_quantize_per_channel(xs, TensorView<float>(out->y_rows, {kRows, kCols}), &mask,
                                in.scale_rows, in.zero_rows, kRows, 0, r8, path);
  copy_mask(mask, out->mask_rows);
  fq::fake_quantize_per_channel(xs, TensorView<float>(out->y_cols, {kRows, kCols}), &mask,
                                in.scale_cols, in.zero_cols, kCols, 1, r8, path);
  copy_mask(mask, out->mask_cols);

  fq::quantize_per_tensor(TensorView<const float>(in.special, {kN}),
                          TensorView<std::int8_t>(out->q, {kN}), 0.05f, 3, r8, path);
  fq::dequantize_per_tensor(TensorView<const std::int8_t>(out->q, {kN}),
                            TensorView<float>(out->dq, {kN}), 0.05f, 3, path);

  fq::MinMaxObserver whole;
  whole.observe(x);
  out->min_tensor = whole.min_val()[0];
  out->max_tensor = whole.max_val()[0];
  fq::PerChannelMinMaxObserver rows(0.01f, 0);
  rows.observe(x);
  std::copy(rows.min_val().begin(), rows.min_val().end(), out->min_rows);
  std::copy(rows.max_val().begin(), rows.max_val().end(), out->max_rows);

  fq::LsqQuantizer<fq::TorchLsq> lsq(r8);
  lsq.set_scale(0.05f);
  lsq.set_zero_point(2.6f);
  lsq.forward_backward(x, TensorView<const float>(in.dy, {kRows, kCols}),
                       TensorView<float>(out->y_lsq, {kRows, kCols}),
                       TensorView<float>(out->dx_lsq, {kRows, kCols}), path);
  out->lsq_scale_grad = lsq.scale_grad()[0];
  out->lsq_zero_point_grad = lsq.zero_point_grad()[0];
}

// The instantiation a default call with view prvalues uses (X, Y, Z deduced).
constexpr fq_odr::FakeQuantizePerTensor kFakeQuantizePerTensor =
    &fq::fake_quantize_per_tensor<fq::TorchNumerics, fq::DefaultArch, TensorView<const float>,
                                  TensorView<float>, std::int32_t>;

}  // namespace

#endif  // FQ_TESTS_SIMD_ARCH_ODR_BODY_HPP_
