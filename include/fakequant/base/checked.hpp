// SPDX-License-Identifier: MIT
// fakequant/base/checked.hpp: overflow-checked arithmetic on user-given extents.
//
// Element counts, byte sizes, strides' reach and padded extents are built from shapes,
// strides, padding and K that the user chose. Each product or sum of them goes through one
// of these functions, which report ErrorCode::kOutOfMemory (the size cannot exist in memory)
// with the operands in the message instead of wrapping into undefined behaviour. They run
// at entry points, O(1) or O(rank) per call, never per element.
#ifndef FQ_BASE_CHECKED_HPP_
#define FQ_BASE_CHECKED_HPP_

#include <cstddef>  // size_t, ptrdiff_t
#include <cstdint>  // int64_t, uintptr_t
#include <limits>   // numeric_limits
#include <string>   // string, to_string

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>

namespace fq {
namespace detail {

/// *r = a * b; true if it overflowed int64 (then *r is unspecified).
inline bool mul_overflows(std::int64_t a, std::int64_t b, std::int64_t* r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_mul_overflow(a, b, r);
#else
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(),
                         lo = std::numeric_limits<std::int64_t>::min();
  const bool over =
      a > 0 ? (b > 0 ? a > hi / b : b < lo / a) : (b > 0 ? a < lo / b : (a != 0 && b < hi / a));
  if (!over) *r = a * b;
  return over;
#endif
}

/// *r = a + b; true if it overflowed int64.
inline bool add_overflows(std::int64_t a, std::int64_t b, std::int64_t* r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_add_overflow(a, b, r);
#else
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(),
                         lo = std::numeric_limits<std::int64_t>::min();
  const bool over = b > 0 ? a > hi - b : a < lo - b;
  if (!over) *r = a + b;
  return over;
#endif
}

/// The largest byte count fakequant allocates or spans with one pointer: PTRDIFF_MAX
/// (pointer differences must fit), less a cache line for alignment padding.
inline constexpr std::int64_t kMaxBytes =
    static_cast<std::int64_t>(std::numeric_limits<std::ptrdiff_t>::max()) - 64;

/// a * b, or an error naming `where`, `what` and both operands when it overflows int64.
inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* where,
                                const char* what) {
  std::int64_t r = 0;
  FQ_CHECK(!mul_overflows(a, b, &r), ErrorCode::kOutOfMemory,
           msg(where, ": ", what, " overflows: ", a, " * ", b));
  return r;
}

/// a + b, or an error naming `where`, `what` and both operands when it overflows int64.
inline std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* where,
                                const char* what) {
  std::int64_t r = 0;
  FQ_CHECK(!add_overflows(a, b, &r), ErrorCode::kOutOfMemory,
           msg(where, ": ", what, " overflows: ", a, " + ", b));
  return r;
}

/// Extents as "[2, 3]" (for messages).
inline std::string extents_string(const std::int64_t* extents, int rank) {
  std::string s = "[";
  for (int d = 0; d < rank; ++d) s += (d ? ", " : "") + std::to_string(extents[d]);
  return s + "]";
}

/// The product of `rank` extents (each >= 0). An error if the product of the non-zero extents
/// overflows int64, even when another extent is 0: code that walks the shape forms partial
/// products (row-major strides), which must all fit.
inline std::int64_t checked_numel(const std::int64_t* extents, int rank, const char* where) {
  std::int64_t n = 1;
  bool zero = false;
  for (int d = 0; d < rank; ++d) {
    if (extents[d] == 0) {
      zero = true;
      continue;
    }
    std::int64_t r = 0;
    FQ_CHECK(!mul_overflows(n, extents[d], &r), ErrorCode::kOutOfMemory,
             msg(where, ": the element count of shape ", extents_string(extents, rank),
                 " overflows a 64-bit integer"));
    n = r;
  }
  return zero ? 0 : n;
}

/// n elements of `elem_size` bytes as a byte count, or an error if it exceeds kMaxBytes.
inline std::size_t checked_bytes(std::int64_t n, std::size_t elem_size, const char* where) {
  std::int64_t bytes = 0;
  const bool ok = n >= 0 && !mul_overflows(n, static_cast<std::int64_t>(elem_size), &bytes) &&
                  bytes <= kMaxBytes;
  FQ_CHECK(ok, ErrorCode::kOutOfMemory,
           msg(where, ": ", n, " elements of ", elem_size, " bytes exceed the largest allocation (",
               kMaxBytes, " bytes)"));
  return static_cast<std::size_t>(bytes);
}

/// Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) intersect (empty ranges never
/// do). Addresses as integers: comparing pointers into unrelated arrays is unspecified.
inline bool byte_ranges_overlap(const void* a, std::int64_t a_bytes, const void* b,
                                std::int64_t b_bytes) noexcept {
  if (a_bytes <= 0 || b_bytes <= 0) return false;
  const auto ia = reinterpret_cast<std::uintptr_t>(a), ib = reinterpret_cast<std::uintptr_t>(b);
  return ia < ib + static_cast<std::uintptr_t>(b_bytes) &&
         ib < ia + static_cast<std::uintptr_t>(a_bytes);
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_BASE_CHECKED_HPP_
