// SPDX-License-Identifier: MIT
// fakequant/scheme/range.hpp: integer ranges — compile-time IntRange and run-time QuantRange.
//
//   IntRange<Bits, Signed, Narrow>:
//     signed   : [-2^(Bits-1), 2^(Bits-1) - 1], narrow: [-2^(Bits-1) + 1, 2^(Bits-1) - 1]
//     unsigned : [0, 2^Bits - 1],               narrow: [1, 2^Bits - 1]  (TensorFlow's
//                narrow_range; Brevitas instead drops the top level — use a RuntimeRange)
//   RuntimeRange: the range is a run-time QuantRange, as PyTorch's quant_min/quant_max, so
//   qconfigs with custom ranges or reduce_range port unchanged (see torch_quant_range()).
#ifndef FQ_SCHEME_RANGE_HPP_
#define FQ_SCHEME_RANGE_HPP_

#include <cstdint>      // int64_t
#include <type_traits>  // integral_constant

#include <fakequant/base/error.hpp>

namespace fq {

/// A run-time integer range [quant_min, quant_max].
struct QuantRange {
  std::int64_t quant_min;
  std::int64_t quant_max;
  /// Number of levels minus one (quant_max - quant_min).
  constexpr std::int64_t span() const noexcept { return quant_max - quant_min; }
  constexpr bool operator==(const QuantRange& o) const noexcept {
    return quant_min == o.quant_min && quant_max == o.quant_max;
  }
};

/// Largest |quant_min|, |quant_max| check_range accepts (observers, qparams, LSQ, quantize):
/// every level is exact in float32 (24-bit significand). The fake-quant functions accept any
/// int32 range (check_fake_quant_range).
inline constexpr std::int64_t kMaxQuantMagnitude = std::int64_t{1} << 24;

/// True if every level of r and every difference of two levels is exact in float32:
/// |quant_min|, |quant_max| <= 2^24 and quant_max - quant_min <= 2^24 (every range of up to
/// 16 bits, and more). The float kernels' fast path needs it; fake quantization computes the
/// others exactly on a slower path (scheme/numerics.hpp).
constexpr bool float_exact_range(const QuantRange& r) noexcept {
  return r.quant_min >= -kMaxQuantMagnitude && r.quant_max <= kMaxQuantMagnitude &&
         r.quant_max - r.quant_min <= kMaxQuantMagnitude;
}

/// A compile-time integer range of Bits bits.
/// @tparam Bits 2..16. @tparam Signed two's complement or unsigned. @tparam Narrow drop one
/// end level (see the file comment).
template <int Bits, bool Signed, bool Narrow = false>
struct IntRange {
  static_assert(Bits >= 2 && Bits <= 16,
                "IntRange: Bits must be between 2 and 16; fakequant simulates 2- to 16-bit "
                "integer grids (use RuntimeRange for a custom range within them).");
  static constexpr int kBits = Bits;
  static constexpr bool kSigned = Signed;
  static constexpr bool kNarrow = Narrow;
  static constexpr bool kRuntime = false;
  static constexpr std::int64_t kMin =
      Signed ? -(std::int64_t{1} << (Bits - 1)) + (Narrow ? 1 : 0) : (Narrow ? 1 : 0);
  static constexpr std::int64_t kMax =
      Signed ? (std::int64_t{1} << (Bits - 1)) - 1 : (std::int64_t{1} << Bits) - 1;
  /// The range as a run-time value.
  static constexpr QuantRange value() noexcept { return QuantRange{kMin, kMax}; }
};

/// The range is given at run time (PyTorch's quant_min/quant_max).
struct RuntimeRange {
  static constexpr bool kRuntime = true;
};

using Int2 = IntRange<2, true>;
using Int4 = IntRange<4, true>;
using UInt4 = IntRange<4, false>;
using Int8 = IntRange<8, true>;
using UInt8 = IntRange<8, false>;
using Int8Narrow = IntRange<8, true, true>;
using Int16 = IntRange<16, true>;
using UInt16 = IntRange<16, false>;

/// True for IntRange<...> and RuntimeRange.
template <class R>
struct is_range : std::false_type {};
template <int B, bool S, bool N>
struct is_range<IntRange<B, S, N>> : std::true_type {};
template <>
struct is_range<RuntimeRange> : std::true_type {};

/// PyTorch's quantized dtypes, for torch_quant_range().
enum class TorchDtype { kQUInt8, kQInt8, kQInt32 };

/// The range torch.ao's observers use for `dtype`, with reduce_range halving it as PyTorch
/// does (quint8 [0,127], qint8 [-64,63]).
constexpr QuantRange torch_quant_range(TorchDtype dtype, bool reduce_range) noexcept {
  switch (dtype) {
    case TorchDtype::kQUInt8:
      return reduce_range ? QuantRange{0, 127} : QuantRange{0, 255};
    case TorchDtype::kQInt8:
      return reduce_range ? QuantRange{-64, 63} : QuantRange{-128, 127};
    case TorchDtype::kQInt32:
      return QuantRange{-2147483648LL, 2147483647LL};
  }
  return QuantRange{0, 255};
}

/// A custom quant_min/quant_max as torch.ao's observers apply it: reduce_range still halves
/// it (floor division), so default_fake_quant's (0, 255, reduce_range=True) runs at [0, 127].
constexpr QuantRange torch_custom_quant_range(std::int64_t quant_min, std::int64_t quant_max,
                                              bool reduce_range) noexcept {
  auto floor_half = [](std::int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  return reduce_range ? QuantRange{floor_half(quant_min), floor_half(quant_max)}
                      : QuantRange{quant_min, quant_max};
}

/// Validates a run-time range for fake quantization; reports kInvalidRange on failure.
inline void check_range(const QuantRange& r, const char* where) {
  FQ_CHECK(r.quant_min <= r.quant_max, ErrorCode::kInvalidRange,
           detail::msg(where, ": quant_min (", r.quant_min, ") must be <= quant_max (", r.quant_max,
                       ")"));
  FQ_CHECK(r.quant_min >= -kMaxQuantMagnitude && r.quant_max <= kMaxQuantMagnitude,
           ErrorCode::kInvalidRange,
           detail::msg(where, ": range [", r.quant_min, ", ", r.quant_max,
                       "] exceeds +-2^24, where float32 can no longer represent every level"));
}

/// Validates a range for fake quantization (fake_quantize_per_tensor / _per_channel), which
/// accepts every int32 range as PyTorch does (e.g. qint32's [-2^31, 2^31 - 1]) and computes
/// ranges beyond float32's exact integers exactly; reports kInvalidRange on failure.
inline void check_fake_quant_range(const QuantRange& r, const char* where) {
  FQ_CHECK(r.quant_min <= r.quant_max, ErrorCode::kInvalidRange,
           detail::msg(where, ": quant_min (", r.quant_min, ") must be <= quant_max (", r.quant_max,
                       ")"));
  FQ_CHECK(r.quant_min >= -(std::int64_t{1} << 31) && r.quant_max < (std::int64_t{1} << 31),
           ErrorCode::kInvalidRange,
           detail::msg(where, ": range [", r.quant_min, ", ", r.quant_max,
                       "] exceeds int32 (quant_min and quant_max must be int32 levels)"));
}

}  // namespace fq

#endif  // FQ_SCHEME_RANGE_HPP_
