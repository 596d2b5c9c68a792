// SPDX-License-Identifier: MIT
// fakequant/core/bit_writer.hpp: appends bits to a packed uint64 bit array, in order.
#ifndef FQ_CORE_BIT_WRITER_HPP_
#define FQ_CORE_BIT_WRITER_HPP_

#include <cstdint>  // uint64_t, int64_t

#include <fakequant/base/config.hpp>

namespace fq {
namespace detail {

/// Writes consecutive bits starting at a bit position; bits below it in the first word are
/// kept. Bit i of the stream is bit (i % 64) of word i / 64. Call flush() when done.
class BitWriter {
 public:
  BitWriter(std::uint64_t* words, std::int64_t bit_pos) noexcept
      : words_(words),
        word_(bit_pos >> 6),
        fill_(static_cast<int>(bit_pos & 63)),
        acc_(fill_ ? words_[word_] & ((std::uint64_t{1} << fill_) - 1) : 0) {}

  /// Appends the low `count` bits of `bits` (1 <= count <= 64; higher bits must be zero).
  FQ_INLINE void put(std::uint64_t bits, int count) noexcept {
    acc_ |= bits << fill_;
    const int total = fill_ + count;
    if (total >= 64) {
      words_[word_++] = acc_;
      acc_ = fill_ ? bits >> (64 - fill_) : 0;
      fill_ = total - 64;
    } else {
      fill_ = total;
    }
  }
  FQ_INLINE void put_bit(bool b) noexcept { put(b ? 1u : 0u, 1); }

  /// Stores the partially filled last word.
  void flush() noexcept {
    if (fill_) words_[word_] = acc_;
  }

 private:
  std::uint64_t* words_;
  std::int64_t word_;
  int fill_;
  std::uint64_t acc_;
};

/// Reads consecutive bits from a packed bit array starting at a bit position.
class BitReader {
 public:
  BitReader(const std::uint64_t* words, std::int64_t bit_pos) noexcept
      : words_(words), word_(bit_pos >> 6), used_(static_cast<int>(bit_pos & 63)) {}

  /// The next `count` bits (1 <= count <= 64) in the low bits of the result.
  FQ_INLINE std::uint64_t get(int count) noexcept {
    std::uint64_t v = words_[word_] >> used_;
    const int avail = 64 - used_;
    if (count >= avail) {
      ++word_;
      if (count > avail) v |= words_[word_] << avail;
      used_ = count - avail;
    } else {
      used_ += count;
    }
    return count == 64 ? v : v & ((std::uint64_t{1} << count) - 1);
  }

 private:
  const std::uint64_t* words_;
  std::int64_t word_;
  int used_;
};

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_BIT_WRITER_HPP_
