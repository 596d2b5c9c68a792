// SPDX-License-Identifier: MIT
// fakequant/int8/linear.hpp: Int8Linear, the integer linear layer — uint8 [m, in] ->
// uint8 [m, out], or float [m, out] (logits) when the trained layer had no output quantizer.
//
// With the parameters of int8/params.hpp (input qparams (s_x, z_x), weight levels q_w and
// scales s_w[o], int32 bias q_b[o], multipliers M[o], output qparams (s_y, z_y) and range):
//   uint8 output  y_q = clamp(requant(Σ (x_q − z_x)·q_w + q_b, M) + z_y, lo, hi)  (linear_u8)
//   float output  y = fma(f32(s_x·s_w[o]), f32(Σ (x_q − z_x)·q_w), b[o])
// The one implementation of this epilogue: convert deploys it, and a QAT layer in integer
// arithmetic (layers/integer_eval.hpp) runs the very same object.
// Construction validates the parameters and sizes (int8/layer_checks.hpp) and packs the
// weights once; K is at most kMaxGemmK (else ErrorCode::kInvalidArgument), so the int32
// accumulator cannot overflow.
#ifndef FQ_INT8_LINEAR_HPP_
#define FQ_INT8_LINEAR_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int32_t, int64_t, uint8_t
#include <utility>  // move
#include <vector>   // vector

#include <fakequant/base/error.hpp>
#include <fakequant/int8/layer_checks.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

namespace detail {
/// Validates a linear layer's parameters (file comment); returns in_features.
inline std::int64_t checked_int8_linear(const Int8LayerParams& p, std::int64_t in_features) {
  constexpr const char* kWhere = "Int8Linear";
  const auto out = static_cast<std::int64_t>(p.bias.size());
  FQ_CHECK(
      in_features > 0 && out > 0, ErrorCode::kShapeMismatch,
      msg(kWhere, ": ", in_features, " input features and ", out, " outputs: both must be > 0"));
  FQ_CHECK(in_features <= kMaxGemmK, ErrorCode::kInvalidArgument,
           msg(kWhere, ": K = ", in_features, " input features exceed ", kMaxGemmK,
               ", the largest K whose int32 accumulator cannot overflow"));
  check_layer_buffer({out, in_features}, kWhere, "the weights");
  check_layer_arrays(p, out, out * in_features, kWhere);
  check_layer_buffer({round_up(out, kPanelCols), round_up(in_features, kGroupK)}, kWhere,
                     "the packed weights");
  return in_features;
}
}  // namespace detail

/// An int8 linear layer (file comment).
class Int8Linear {
 public:
  /// Validates the parameters and sizes first (file comment).
  explicit Int8Linear(Int8LayerParams p, std::int64_t in_features)
      : p_(std::move(p)),
        packed_(p_.weight.data(), static_cast<std::int64_t>(p_.bias.size()),
                detail::checked_int8_linear(p_, in_features), in_features) {}

  std::int64_t in_features() const noexcept { return packed_.k(); }
  std::int64_t out_features() const noexcept { return packed_.n(); }
  const ActQParams& input_qparams() const noexcept { return p_.in; }
  const ActQParams& output_qparams() const noexcept { return p_.out; }
  bool float_output() const noexcept { return p_.float_out; }
  const Int8LayerParams& params() const noexcept { return p_; }

  /// uint8 output (the layer had an output quantizer). Arch: the kernels' instruction set
  /// (fq::DefaultArch; simd/arch.hpp), so TUs with different -m flags get their own run.
  template <class Arch = DefaultArch>
  void run(const std::uint8_t* x, std::int64_t m, std::uint8_t* y) const {
    FQ_CHECK(!p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a float output; pass a float*");
    linear_u8<SingleRounding<RoundHalfEven>, Arch>(x, m, in_features(), p_.in.zero_point, packed_,
                                                   p_.requant(), y, out_features());
  }
  /// Float output: y = fma(s_x·s_w[o], Σ(x_q − z_x)·q_w, b[o]) (the float bias, not rounded).
  template <class Arch = DefaultArch>
  void run(const std::uint8_t* x, std::int64_t m, float* y) const {
    FQ_CHECK(p_.float_out, ErrorCode::kInvalidArgument,
             "Int8Linear::run: this layer has a uint8 output; pass a std::uint8_t*");
    FQ_CHECK(m >= 0, ErrorCode::kShapeMismatch, detail::msg("Int8Linear::run: negative m ", m));
    acc_.resize(static_cast<std::size_t>(m * out_features()));
    gemm_u8s8s32<Arch>(x, m, in_features(), packed_, acc_.data(), out_features(), p_.in.zero_point);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t o = 0; o < out_features(); ++o) {
        const auto oi = static_cast<std::size_t>(o);
        y[i * out_features() + o] =
            p_.float_output(acc_[static_cast<std::size_t>(i * out_features() + o)], oi);
      }
  }

 private:
  Int8LayerParams p_;
  PackedWeights packed_;
  mutable std::vector<std::int32_t> acc_;  // run's accumulators, reused: run is not reentrant
};

}  // namespace fq

#endif  // FQ_INT8_LINEAR_HPP_
