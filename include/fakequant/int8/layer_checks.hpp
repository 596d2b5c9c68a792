// SPDX-License-Identifier: MIT
// fakequant/int8/layer_checks.hpp: the size bounds every integer layer checks when it is
// constructed (Int8Linear, Int8Conv2d), so that a layer built from a crafted model file cannot
// make construction or its first run allocate more than a bounded amount.
//
// A layer is constructed only if each buffer it will use for one image — its packed weights,
// its input and output activations and, for a convolution, the padded and the unfolded
// (im2col) input — takes at most kMaxLayerBufferBytes (2^31 bytes), else ErrorCode::kOutOfMemory
// naming the buffer; and only if its parameter arrays have the sizes its shape implies (else
// ErrorCode::kInvalidArgument).
#ifndef FQ_INT8_LAYER_CHECKS_HPP_
#define FQ_INT8_LAYER_CHECKS_HPP_

#include <cstddef>           // size_t
#include <cstdint>           // int64_t
#include <initializer_list>  // initializer_list
#include <string>            // string, to_string

#include <fakequant/base/error.hpp>
#include <fakequant/int8/params.hpp>

namespace fq {

/// The most bytes one buffer of an integer layer may take for one image (file comment).
inline constexpr std::int64_t kMaxLayerBufferBytes = std::int64_t{1} << 31;

namespace detail {
/// v rounded up to a multiple of m (v >= 0, m > 0, v small enough: checked by the caller).
constexpr std::int64_t round_up(std::int64_t v, std::int64_t m) noexcept {
  return (v + m - 1) / m * m;
}
/// Refuses a buffer whose size, the product of `factors` (each >= 0, at most 2^40 so that
/// round_up above cannot overflow), exceeds kMaxLayerBufferBytes.
inline void check_layer_buffer(std::initializer_list<std::int64_t> factors, const char* where,
                               const char* what) {
  std::int64_t n = 1;
  bool ok = true;
  std::string dims;
  for (std::int64_t f : factors) {
    dims += (dims.empty() ? "" : " x ") + std::to_string(f);
    ok = ok && f >= 0 && (f == 0 || n <= kMaxLayerBufferBytes / f);
    if (ok) n *= f;
  }
  FQ_CHECK(ok && n <= kMaxLayerBufferBytes, ErrorCode::kOutOfMemory,
           msg(where, ": ", what, " of one image (", dims, " bytes) exceeds the limit of ",
               kMaxLayerBufferBytes, " bytes"));
}
/// The parameter arrays of a layer with `out` channels and `weights` weight levels.
inline void check_layer_arrays(const Int8LayerParams& p, std::int64_t out, std::int64_t weights,
                               const char* where) {
  const auto o = static_cast<std::size_t>(out);
  FQ_CHECK(p.weight.size() == static_cast<std::size_t>(weights) && p.weight_scale.size() == o &&
               p.bias.size() == o && p.real_bias.size() == o &&
               p.multiplier.size() == (p.float_out ? 0 : o),
           ErrorCode::kInvalidArgument,
           msg(where, ": parameter arrays of sizes ", p.weight.size(), " (weights), ",
               p.weight_scale.size(), " (weight scales), ", p.bias.size(), " (bias), ",
               p.real_bias.size(), " (real bias), ", p.multiplier.size(),
               " (multipliers) do not match ", out, " channels and ", weights, " weights"));
}
}  // namespace detail

}  // namespace fq

#endif  // FQ_INT8_LAYER_CHECKS_HPP_
