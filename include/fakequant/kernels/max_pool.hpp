// SPDX-License-Identifier: MIT
// fakequant/kernels/max_pool.hpp: max pooling of uint8 NCHW levels (no padding), the integer
// model's pooling.
//
//   y[c][i][j] = max_{p, q < k} x[c][i·s + p][j·s + q],  OH = (H − k) / s + 1 (likewise OW)
// Exact with respect to the float simulation: a per-tensor quantizer is monotone, so the max of
// the levels is the level of the max, and the output keeps the input's qparams.
#ifndef FQ_KERNELS_MAX_POOL_HPP_
#define FQ_KERNELS_MAX_POOL_HPP_

#include <cstdint>  // int64_t, uint8_t

#include <fakequant/base/error.hpp>

namespace fq {

namespace detail {
/// max_pool2d_u8 with the window K and stride S fixed at compile time when they are > 0 (the
/// compiler then unrolls the window and vectorizes the row; about 2x faster than the run-time
/// loop on the demo's 2x2 pooling), or taken from k and s when they are 0.
template <std::int64_t K, std::int64_t S>
void max_pool2d_u8_rows(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                        std::int64_t k_rt, std::int64_t s_rt, std::uint8_t* y) {
  const std::int64_t k = K > 0 ? K : k_rt, s = S > 0 ? S : s_rt;
  const std::int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t i = 0; i < oh; ++i) {
      const std::uint8_t* in = x + (c * h + i * s) * w;
      std::uint8_t* out = y + (c * oh + i) * ow;
      for (std::int64_t j = 0; j < ow; ++j) {
        std::uint8_t m = 0;
        for (std::int64_t p = 0; p < k; ++p)
          for (std::int64_t q = 0; q < k; ++q) {
            const std::uint8_t v = in[p * w + j * s + q];
            m = v > m ? v : m;
          }
        out[j] = m;
      }
    }
}
}  // namespace detail

/// Max pooling of `nc` uint8 planes h × w with a k × k window and stride s (file comment).
inline void max_pool2d_u8(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                          std::int64_t k, std::int64_t s, std::uint8_t* y) {
  FQ_CHECK(k > 0 && s > 0 && nc >= 0, ErrorCode::kInvalidArgument,
           detail::msg("max_pool2d_u8: window ", k, ", stride ", s, " and ", nc,
                       " planes: window and stride must be > 0, planes >= 0"));
  FQ_CHECK(k <= h && k <= w, ErrorCode::kShapeMismatch,
           detail::msg("max_pool2d_u8: window ", k, " does not fit the ", h, "x", w, " input"));
  if (nc == 0) return;
  FQ_CHECK(x != nullptr && y != nullptr, ErrorCode::kInvalidArgument,
           "max_pool2d_u8: null input or output");
  if (k == 2 && s == 2)
    detail::max_pool2d_u8_rows<2, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 2)
    detail::max_pool2d_u8_rows<3, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 1)
    detail::max_pool2d_u8_rows<3, 1>(x, nc, h, w, k, s, y);
  else
    detail::max_pool2d_u8_rows<0, 0>(x, nc, h, w, k, s, y);
}

}  // namespace fq

#endif  // FQ_KERNELS_MAX_POOL_HPP_
