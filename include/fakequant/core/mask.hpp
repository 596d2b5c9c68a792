// SPDX-License-Identifier: MIT
// fakequant/core/mask.hpp: the packed bit mask a fake-quant forward leaves for its backward.
//
// One bit per element, 1 where quant_min <= q <= quant_max (the STE passes the gradient).
// Bits are stored in the order the forward visited the elements — the memory order of x's
// layout (dimensions by decreasing stride) — and the Mask remembers that order, so the
// backward reads dy and dx in the same order whatever their own strides. 1 bit per element
// instead of ATen's 1 byte keeps the forward+backward traffic at memcpy level. The storage
// is the Mask's own (never user memory) and is reused across steps without reallocation
// once large enough. A Mask no forward has written is refused by the backward and the
// accessors (a clear error, never a read of missing bits).
#ifndef FQ_CORE_MASK_HPP_
#define FQ_CORE_MASK_HPP_

#include <cstdint>           // uint64_t, int64_t
#include <initializer_list>  // initializer_list
#include <vector>            // vector

#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>

namespace fq {

/// Packed per-element mask of a fake-quant forward, with the layout it was written in.
class Mask {
 public:
  Mask() = default;

  /// Number of elements covered.
  std::int64_t numel() const noexcept { return numel_; }
  int rank() const noexcept { return rank_; }
  const Dims& shape() const noexcept { return shape_; }
  /// The visiting order of the bits (order()[0] is the outermost dimension).
  const detail::DimOrder& order() const noexcept { return order_; }
  /// The packed words; bit i of the visiting order is bit i % 64 of word i / 64.
  const std::vector<std::uint64_t>& words() const noexcept { return words_; }

  /// True once a forward (prepare()) has written the mask; a default-constructed Mask is not
  /// written, and every accessor and fake_quantize_backward refuse it (kInvalidArgument).
  bool written() const noexcept { return written_; }

  /// The bit of the element at a logical multi-index (rank() entries).
  bool test(const std::int64_t* index) const {
    check_written("Mask::test");
    std::int64_t bit = 0;
    for (int i = 0; i < rank_; ++i) {
      const auto d = static_cast<std::size_t>(order_[static_cast<std::size_t>(i)]);
      FQ_CHECK(index[d] >= 0 && index[d] < shape_[d], ErrorCode::kInvalidArgument,
               detail::msg("Mask::test: index ", index[d], " out of range for dimension ", d,
                           " of extent ", shape_[d]));
      bit = bit * shape_[d] + index[d];
    }
    return (words_[static_cast<std::size_t>(bit >> 6)] >> (bit & 63)) & 1u;
  }
  bool test(std::initializer_list<std::int64_t> index) const {
    FQ_CHECK(static_cast<int>(index.size()) == rank_, ErrorCode::kShapeMismatch,
             detail::msg("Mask::test: ", index.size(), " indices for a rank-", rank_, " mask"));
    return test(index.begin());
  }
  /// The bit of the element with row-major (logical) linear index `i`, 0 <= i < numel().
  bool test_linear(std::int64_t i) const {
    check_written("Mask::test_linear");
    FQ_CHECK(
        i >= 0 && i < numel_, ErrorCode::kInvalidArgument,
        detail::msg("Mask::test_linear: index ", i, " out of range for ", numel_, " elements"));
    std::int64_t index[kMaxRank] = {};
    for (int d = rank_ - 1; d >= 0; --d) {
      const std::int64_t e = shape_[static_cast<std::size_t>(d)];
      index[d] = i % e;  // e > 0: the mask has i < numel_ elements
      i /= e;
    }
    return test(index);
  }
  /// Number of set bits (elements that pass a gradient).
  std::int64_t count() const noexcept {
    std::int64_t c = 0;
    for (std::uint64_t w : words_) c += __builtin_popcountll(w);
    return c;
  }

  /// Sets the layout for `numel` elements and returns the word storage (internal use).
  std::uint64_t* prepare(int rank, const Dims& shape, const detail::DimOrder& order) {
    written_ = true;
    rank_ = rank;
    shape_ = shape;
    order_ = order;
    numel_ = 1;
    for (int d = 0; d < rank; ++d) numel_ *= shape[static_cast<std::size_t>(d)];
    words_.resize(static_cast<std::size_t>((numel_ + 63) / 64));  // every word is rewritten
    return words_.data();
  }
  /// Sets every bit (fake quantization disabled: the gradient passes everywhere).
  void set_all() noexcept {
    for (auto& w : words_) w = ~std::uint64_t{0};
    if (numel_ % 64) words_.back() = (std::uint64_t{1} << (numel_ % 64)) - 1;
  }

 private:
  void check_written(const char* where) const {
    FQ_CHECK(written_, ErrorCode::kInvalidArgument,
             detail::msg(where, ": the mask was never written; a fake-quant forward fills it"));
  }

  std::vector<std::uint64_t> words_;
  std::int64_t numel_ = 0;
  int rank_ = 0;
  bool written_ = false;
  Dims shape_{};
  detail::DimOrder order_ = detail::row_major_order();
};

}  // namespace fq

#endif  // FQ_CORE_MASK_HPP_
