// SPDX-License-Identifier: MIT
// The transformer tape ops against golden vectors of PyTorch 1.13
// (tests/golden/gen_transformer_golden.py): layer_norm, rms_norm, gelu (erf, tanh), silu,
// softmax and log_softmax on several axes, kd_kl_div and distillation_loss — forward values and
// the gradients of x, gamma and beta for a random upstream gradient, on ordinary and
// adversarial rows (×80, 1e4 offsets, a constant row, −inf entries, |x| up to 100).
//
// Each value must be within 1e-6 + 1e-5·|ref| + 4 ulp(scale) of PyTorch's formula evaluated in
// float64 ("ref"; scale: the magnitude of the terms it is formed from, see compare()), and
// within the same tolerance of PyTorch's float32 result ("t32") unless it is at least as close
// to ref as t32 is (where PyTorch's float32 loses accuracy: 1e4 offsets, ×80 rows).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/activation.hpp>
#include <fakequant/ops/distill.hpp>
#include <fakequant/ops/norm.hpp>
#include <fakequant/ops/softmax.hpp>
#include <fakequant/tape/custom_op.hpp>

#include "golden/transformer_golden_data.hpp"

namespace {

namespace g = fq_transformer_golden;
using fq::Tape;
using fq::Var;

std::vector<float> decode(const std::uint32_t* bits, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  if (bits) std::memcpy(v.data(), bits, v.size() * sizeof(float));
  return v;
}

/// Within |got − want| <= 1e-6 + 1e-5·|want| + 4 ulp(scale): `scale` is the magnitude of the
/// terms the value was formed from (float cancellation cannot do better than their ulp).
bool close(float got, float want, double scale) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(double(got) - double(want)) <=
         1e-6 + 1e-5 * std::abs(double(want)) + 4.0 * 0x1p-23 * scale;
}

/// L = Σ y ⊙ dy, so that backward seeds y's gradient with dy.
Var dot_with(Tape& tape, const Var& y, const float* dy) {
  return fq::custom_op(
      tape, {y}, {},
      [&](float* l) {
        double s = 0;
        for (std::int64_t i = 0; i < y.numel(); ++i)  // log_softmax's −inf: dy flows, no term
          if (std::isfinite(y.value()[i])) s += double(y.value()[i]) * dy[i];
        *l = static_cast<float>(s);
      },
      [y, dy](const float*, const float* dl) {
        for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += dl[0] * dy[i];
      });
}

/// Compares `got` with both golden results (file comment). The scale of element i: for the
/// element-wise ops |x_i|·max(1, |dy_i|), otherwise the largest |ref| of its last-axis row.
void compare(const std::vector<float>& got, const std::uint32_t* ref_bits,
             const std::uint32_t* t32_bits, std::int64_t row, const std::vector<float>* x,
             const std::vector<float>* dy, const char* name, const char* what) {
  const auto n = static_cast<std::int64_t>(got.size());
  const std::vector<float> ref = decode(ref_bits, n), t32 = decode(t32_bits, n);
  std::vector<double> scale(got.size(), 0.0);
  for (std::int64_t r0 = 0; r0 < n; r0 += row) {
    double m = 0;
    for (std::int64_t i = r0; i < r0 + row; ++i)
      if (std::isfinite(ref[std::size_t(i)]))
        m = std::max(m, double(std::abs(ref[std::size_t(i)])));
    for (std::int64_t i = r0; i < r0 + row; ++i) scale[std::size_t(i)] = m;
  }
  if (x)  // element-wise
    for (std::size_t i = 0; i < got.size(); ++i)
      scale[i] = std::abs(double((*x)[i])) * std::max(1.0, std::abs(double((*dy)[i])));
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(name << ": " << what << "[" << i << "] got " << got[i] << ", float64 reference " << ref[i]
              << ", PyTorch float32 " << t32[i] << ", scale " << scale[i]);
    REQUIRE(close(got[i], ref[i], scale[i]));
    // Either as close to ref as PyTorch's float32 result, or close to that result too.
    const bool as_good = std::isfinite(ref[i]) &&
                         std::abs(double(got[i]) - ref[i]) <= std::abs(double(t32[i]) - ref[i]);
    REQUIRE((close(got[i], t32[i], scale[i]) || as_good));
  }
}

void run_case(const g::Case& c) {
  fq::Shape shape;
  shape.rank = c.rank;
  for (int d = 0; d < c.rank; ++d) shape.dims[static_cast<std::size_t>(d)] = c.shape[d];
  const std::int64_t n = shape.numel(), dlen = shape[c.rank - 1];
  std::vector<float> x = decode(c.x, n), dx(x.size(), 0.0f);
  std::vector<float> gamma = decode(c.gamma, dlen), dgamma(gamma.size(), 0.0f);
  std::vector<float> beta = decode(c.beta, dlen), dbeta(beta.size(), 0.0f);
  std::vector<float> teacher = decode(c.teacher, n), dteacher(teacher.size(), 0.0f);
  const std::vector<float> dy = decode(c.dy, c.y_numel);
  Tape tape;
  const Var xv = tape.leaf(x.data(), dx.data(), shape);
  const Var gv = c.gamma ? tape.leaf(gamma.data(), dgamma.data(), {dlen}) : Var();
  const Var bv = c.beta ? tape.leaf(beta.data(), dbeta.data(), {dlen}) : Var();
  // The teacher has a gradient buffer: the losses must leave it untouched.
  const Var tv = tape.leaf(teacher.data(), dteacher.data(), shape);
  Var y;
  switch (c.op) {
    case g::Op::kLayerNorm:
      y = fq::ops::layer_norm(tape, xv, gv, bv, c.eps);
      break;
    case g::Op::kRmsNorm:
      y = fq::ops::rms_norm(tape, xv, gv, c.eps);
      break;
    case g::Op::kGelu:
      y = fq::ops::gelu(tape, xv, fq::ops::GeluApprox::kNone);
      break;
    case g::Op::kGeluTanh:
      y = fq::ops::gelu(tape, xv, fq::ops::GeluApprox::kTanh);
      break;
    case g::Op::kSilu:
      y = fq::ops::silu(tape, xv);
      break;
    case g::Op::kSoftmax:
      y = fq::ops::softmax(tape, xv, c.axis);
      break;
    case g::Op::kLogSoftmax:
      y = fq::ops::log_softmax(tape, xv, c.axis);
      break;
    case g::Op::kKdKlDiv:
      y = fq::ops::kd_kl_div(tape, xv, tv, c.temperature);
      break;
    case g::Op::kDistill:
      y = fq::ops::distillation_loss(tape, xv, tv, c.labels, c.temperature, c.alpha);
      break;
  }
  REQUIRE(y.numel() == c.y_numel);
  const bool elementwise = c.op == g::Op::kGelu || c.op == g::Op::kGeluTanh || c.op == g::Op::kSilu;
  const std::vector<float>* ex = elementwise ? &x : nullptr;
  const std::int64_t row = y.numel() == 1 ? 1 : dlen;
  compare(std::vector<float>(y.value(), y.value() + y.numel()), c.ref.y, c.t32.y, row, ex, &dy,
          c.name, "y");
  tape.backward(y.numel() == 1 ? y : dot_with(tape, y, dy.data()));
  compare(dx, c.ref.dx, c.t32.dx, dlen, ex, &dy, c.name, "dx");
  if (c.ref.dgamma)
    compare(dgamma, c.ref.dgamma, c.t32.dgamma, dlen, nullptr, &dy, c.name, "dgamma");
  if (c.ref.dbeta) compare(dbeta, c.ref.dbeta, c.t32.dbeta, dlen, nullptr, &dy, c.name, "dbeta");
  for (float v : dteacher) REQUIRE(v == 0.0f);
}

}  // namespace

TEST_CASE("transformer ops: forward and gradients match PyTorch 1.13 golden vectors",
          "[ops][golden][transformer]") {
  int per_op[9] = {};
  for (const g::Case& c : g::kCases) {
    SECTION(c.name) { run_case(c); }
    ++per_op[static_cast<int>(c.op)];
  }
  for (int count : per_op) CHECK(count > 0);  // every op has golden data
}
