// SPDX-License-Identifier: MIT
// fakequant/kernels/packed_weights.hpp: int8 weights W [N, K] (row-major, one row per output
// channel) repacked for the int8 GEMM C = A * W^T.
//
// Layout: columns (output channels) in panels of 16; K in groups of 4. Panel p, group g is one
// 64-byte block at byte (p * k_groups + g) * 64, holding for column j = 0..15 the four weights
// W[16p + j][4g + 0..3] at bytes 4j..4j+3: exactly the operand of one vpdpbusd (16 int32
// lanes, each the sum of 4 u8 x s8 products). The AVX2 path reads each block as two 32-byte
// halves (8 columns). Padding (K up to a multiple of 4, N up to a multiple of 16) is zero, so
// it adds nothing whatever the activations there are.
// col_sums[n] = sum_k W[n][k]: the compensation term for an activation zero point and for
// signed activations shifted to unsigned (see gemm.hpp). K is bounded by kMaxGemmK (the exact
// int32 accumulator of gemm.hpp) at packing already, which also keeps every column sum
// (|sum| <= 128 K) and the compensation (za + s) * col_sums within int32.
// The packed copy is fakequant's own memory (the user's W is only read).
#ifndef FQ_KERNELS_PACKED_WEIGHTS_HPP_
#define FQ_KERNELS_PACKED_WEIGHTS_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int8_t, int32_t, int64_t
#include <vector>   // vector

#include <fakequant/base/aligned.hpp>
#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>

namespace fq {

/// Largest K with an exact int32 accumulator in the int8 GEMM: K * 255 * 128 < 2^31.
inline constexpr std::int64_t kMaxGemmK = 65793;

/// Columns per packed panel and K per group (fixed by vpdpbusd).
inline constexpr std::int64_t kPanelCols = 16;
inline constexpr std::int64_t kGroupK = 4;

/// Int8 weights packed for gemm_u8s8s32 / gemm_s8s8s32.
class PackedWeights {
 public:
  PackedWeights() = default;

  /// Packs W [n, k] with row stride ldw (>= k) elements. n >= 0, 0 <= k <= kMaxGemmK.
  PackedWeights(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int64_t ldw)
      : n_(n), k_(k) {
    constexpr const char* kWhere = "PackedWeights";
    FQ_CHECK(n >= 0 && k >= 0, ErrorCode::kShapeMismatch,
             detail::msg(kWhere, ": negative shape [", n, ", ", k, "]"));
    FQ_CHECK(ldw >= k, ErrorCode::kInvalidLayout,
             detail::msg(kWhere, ": row stride ", ldw, " is smaller than K = ", k));
    FQ_CHECK(k <= kMaxGemmK, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": K = ", k, " exceeds ", kMaxGemmK,
                         ", the largest K whose int32 accumulator cannot overflow (K * 255 * 128 "
                         "< 2^31); split K"));
    FQ_CHECK(w != nullptr || n == 0 || k == 0, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": null weights for shape [", n, ", ", k, "]"));
    // The farthest weight read, (n - 1) * ldw + k, and the packed size must fit.
    if (n > 0)
      detail::checked_add(detail::checked_mul(n - 1, ldw, kWhere, "the weights' extent"), k, kWhere,
                          "the weights' extent");
    k_groups_ = (k + kGroupK - 1) / kGroupK;
    panels_ = (n + kPanelCols - 1) / kPanelCols;
    data_.assign(
        detail::checked_bytes(
            detail::checked_mul(panels_, k_groups_ * 64, kWhere, "the packed size"), 1, kWhere),
        0);
    col_sums_.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int64_t p = c / kPanelCols, j = c % kPanelCols;
      std::int32_t sum = 0;
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const std::int8_t v = w[c * ldw + kk];
        sum += v;
        const std::int64_t g = kk / kGroupK;
        data_[static_cast<std::size_t>((p * k_groups_ + g) * 64 + j * 4 + kk % kGroupK)] = v;
      }
      col_sums_[static_cast<std::size_t>(c)] = sum;
    }
  }

  std::int64_t n() const noexcept { return n_; }
  std::int64_t k() const noexcept { return k_; }
  std::int64_t k_groups() const noexcept { return k_groups_; }
  std::int64_t panels() const noexcept { return panels_; }
  /// Bytes from one panel to the next.
  std::int64_t panel_stride() const noexcept { return k_groups_ * 64; }
  const std::int8_t* data() const noexcept { return data_.data(); }
  const std::int32_t* col_sums() const noexcept { return col_sums_.data(); }

  /// The weight W[c][kk] read back from the packed layout.
  std::int8_t at(std::int64_t c, std::int64_t kk) const noexcept {
    const std::int64_t p = c / kPanelCols, j = c % kPanelCols, g = kk / kGroupK;
    return data_[static_cast<std::size_t>((p * k_groups_ + g) * 64 + j * 4 + kk % kGroupK)];
  }

 private:
  std::int64_t n_ = 0, k_ = 0, k_groups_ = 0, panels_ = 0;
  std::vector<std::int8_t, detail::Align64Allocator<std::int8_t>> data_;
  std::vector<std::int32_t> col_sums_;
};

}  // namespace fq

#endif  // FQ_KERNELS_PACKED_WEIGHTS_HPP_
