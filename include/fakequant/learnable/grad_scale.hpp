// SPDX-License-Identifier: MIT
// fakequant/learnable/grad_scale.hpp: the factor g that scales the gradients of the learnable
// quantization parameters (scale, zero point) of LSQ / LSQ+.
//
//   TorchGradScale     g = 1 / sqrt(numel * quant_max)  PyTorch's _LearnableFakeQuantize with
//                      use_grad_scaling=True: numel of the WHOLE tensor, also per channel.
//   LsqPaperGradScale  g = 1 / sqrt(N * Qp)             Esser et al. 2020 (LSQ): N the number
//                      of elements sharing the scale (per channel: numel / channels), Qp the
//                      number of positive levels = quant_max.
//   NoGradScale        g = 1.
// g multiplies d scale and d zero point only, never dx (as ATen). Computed in double, then
// narrowed to float (PyTorch passes the Python float to the op, which narrows it).
// TorchGradScale and LsqPaperGradScale need quant_max > 0 (a clear error otherwise).
#ifndef FQ_LEARNABLE_GRAD_SCALE_HPP_
#define FQ_LEARNABLE_GRAD_SCALE_HPP_

#include <cmath>        // sqrt
#include <cstdint>      // int64_t
#include <type_traits>  // false_type, true_type

#include <fakequant/base/error.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

namespace detail {
inline float inverse_sqrt_grad_factor(std::int64_t n, const QuantRange& r, const char* where) {
  FQ_CHECK(r.quant_max > 0, ErrorCode::kInvalidRange,
           msg(where, ": gradient scaling needs quant_max > 0, got ", r.quant_max));
  if (n <= 0) return 1.0f;  // empty tensor: nothing is scaled
  return static_cast<float>(1.0 /
                            std::sqrt(static_cast<double>(n) * static_cast<double>(r.quant_max)));
}
}  // namespace detail

/// PyTorch's _LearnableFakeQuantize: 1 / sqrt(numel * quant_max), numel of the whole tensor.
struct TorchGradScale {
  static float factor(std::int64_t numel, std::int64_t /*per_channel_numel*/, const QuantRange& r) {
    return detail::inverse_sqrt_grad_factor(numel, r, "TorchGradScale");
  }
};

/// The LSQ paper's 1 / sqrt(N * Qp), N the element count of one channel (or of the tensor).
struct LsqPaperGradScale {
  static float factor(std::int64_t /*numel*/, std::int64_t per_channel_numel, const QuantRange& r) {
    return detail::inverse_sqrt_grad_factor(per_channel_numel, r, "LsqPaperGradScale");
  }
};

/// No gradient scaling: g = 1.
struct NoGradScale {
  static float factor(std::int64_t, std::int64_t, const QuantRange&) noexcept { return 1.0f; }
};

template <class G>
struct is_grad_scale : std::false_type {};
template <>
struct is_grad_scale<TorchGradScale> : std::true_type {};
template <>
struct is_grad_scale<LsqPaperGradScale> : std::true_type {};
template <>
struct is_grad_scale<NoGradScale> : std::true_type {};

}  // namespace fq

#endif  // FQ_LEARNABLE_GRAD_SCALE_HPP_
