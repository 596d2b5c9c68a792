// SPDX-License-Identifier: MIT
// fakequant/format/codebook.hpp: non-uniform (codebook) element formats — NF4 (QLoRA), a
// user-supplied sorted level set, power-of-two and logarithmic level sets — as fq::Codebook,
// a validated run-time set of levels with its decision thresholds, and the scalar reference
// of codebook fake quantization (scaled nearest level) shared by the scalar and SIMD kernels.
//
// A Codebook holds n >= 2 finite, strictly increasing float levels L[0] < ... < L[n-1] and
// n - 1 thresholds t[i] in [L[i], L[i+1]). The level index of a value v is
//     nearest_level_index(v) = #{ i : v > t[i] }        (count of thresholds strictly below v)
// With the default thresholds t[i] = RD((L[i] + L[i+1]) / 2) — the exact midpoint rounded
// DOWN to float — that is the exact nearest level for every float v, and a v exactly at a
// midpoint (only possible where the midpoint is a float) goes to the LOWER level. Values
// beyond the ends clamp to L[0] / L[n-1] (+-Inf included). A NaN v has index 0, and
// nearest_level(NaN) is NaN (quieted): NaN never turns into a level.
//
// bitsandbytes (csrc/kernels.cu, dQuantizeNF4) decides NF4 with a binary tree of `x > c`
// comparisons against 15 float literals, so its ties also go to the lower level. Its literals
// are the double midpoints written with 16 digits and rounded to float: 11 of 15 equal our
// RD midpoints; 4 (between levels 1|2, 3|4, 4|5 and 8|9) are one float above the exact
// midpoint, so at those 4 float inputs bitsandbytes picks the lower level although the upper
// one is nearer by less than an ulp. Codebook::nf4_bitsandbytes() uses its literals verbatim
// (bit-exact with bitsandbytes); Codebook::nf4() is the exact nearest level.
//
// Fake quantization with a scale s > 0 (a block absmax, or a per-tensor scale):
//     y = L[nearest_level_index(x * f32(1/s))] * s        (bitsandbytes multiplies by 1/absmax)
//     mask = L[0] * s <= x <= L[n-1] * s                  (false for NaN and +-Inf)
//     NaN x -> y = NaN (quieted); s = 0 (an all-zero block) uses 1/s := 1, so y = +-0;
//     1/s not finite (s < ~2.9e-39) divides: x / s.
#ifndef FQ_FORMAT_CODEBOOK_HPP_
#define FQ_FORMAT_CODEBOOK_HPP_

#include <algorithm>         // lower_bound
#include <cmath>             // isfinite, isnan, nextafter, pow
#include <cstddef>           // size_t
#include <cstdint>           // int64_t
#include <initializer_list>  // initializer_list
#include <limits>            // numeric_limits
#include <vector>            // vector

#include <fakequant/base/error.hpp>

namespace fq {

/// The 16 NF4 levels of QLoRA (Dettmers et al. 2023, arXiv:2305.14314, appendix E) as
/// bitsandbytes stores them: float32 constants of csrc/kernels.cu (dDequantizeNF4) and
/// bitsandbytes/functional.py (get_4bit_type("nf4")); each literal is an exact float.
inline constexpr float kNf4Levels[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};
/// The 15 decision constants of bitsandbytes' dQuantizeNF4 tree (csrc/kernels.cu), in
/// increasing order: code i+1 is chosen when x > kNf4BitsandbytesThresholds[i].
inline constexpr float kNf4BitsandbytesThresholds[15] = {
    -0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,   -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,   0.2035212516784668f,   0.2920137718319893f,    0.3893125355243683f,
    0.5016634166240692f,   0.6427869200706482f,   0.8614784181118011f,
};

namespace detail {
/// The largest float <= (a + b) / 2, computed exactly (a, b finite floats): the sum in double
/// with its rounding error (TwoSum), halved exactly, then rounded down to float.
inline float midpoint_round_down(float a, float b) noexcept {
  const double s = static_cast<double>(a) + static_cast<double>(b);
  const double bb = s - static_cast<double>(a);
  const double e = (static_cast<double>(a) - (s - bb)) + (static_cast<double>(b) - bb);
  const double hs = s * 0.5, he = e * 0.5;  // exact: doubles do not underflow here
  float f = static_cast<float>(hs);
  const double fd = static_cast<double>(f);
  if (fd > hs || (fd == hs && he < 0.0))
    f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}
}  // namespace detail

/// A validated set of levels with its thresholds (see the file comment).
class Codebook {
 public:
  /// The levels must be finite and strictly increasing, at least 2 (else kInvalidArgument
  /// naming the first bad index). Thresholds: the exact midpoints rounded down.
  Codebook(const float* levels, std::size_t count) { init(levels, count, "fq::Codebook"); }
  explicit Codebook(const std::vector<float>& levels) : Codebook(levels.data(), levels.size()) {}
  Codebook(std::initializer_list<float> levels) : Codebook(levels.begin(), levels.size()) {}

  /// Levels with explicit thresholds t[i] in [L[i], L[i+1]) (count - 1 of them).
  static Codebook with_thresholds(const std::vector<float>& levels,
                                  const std::vector<float>& thresholds) {
    constexpr const char* kWhere = "fq::Codebook::with_thresholds";
    Codebook c(levels);
    FQ_CHECK(thresholds.size() + 1 == levels.size(), ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": ", levels.size(), " levels need ", levels.size() - 1,
                         " thresholds, got ", thresholds.size()));
    for (std::size_t i = 0; i < thresholds.size(); ++i)
      FQ_CHECK(thresholds[i] >= levels[i] && thresholds[i] < levels[i + 1],
               ErrorCode::kInvalidArgument,
               detail::msg(kWhere, ": threshold ", i, " (", thresholds[i], ") must lie in [level ",
                           i, ", level ", i + 1, ") = [", levels[i], ", ", levels[i + 1], ")"));
    c.thresholds_ = thresholds;
    return c;
  }

  /// NF4 with exact nearest-level thresholds.
  static Codebook nf4() { return Codebook(kNf4Levels, 16); }
  /// NF4 with bitsandbytes' decision constants (bit-exact with dQuantizeNF4).
  static Codebook nf4_bitsandbytes() {
    return with_thresholds(
        std::vector<float>(kNf4Levels, kNf4Levels + 16),
        std::vector<float>(kNf4BitsandbytesThresholds, kNf4BitsandbytesThresholds + 15));
  }

  std::size_t size() const noexcept { return levels_.size(); }
  const std::vector<float>& levels() const noexcept { return levels_; }
  const std::vector<float>& thresholds() const noexcept { return thresholds_; }
  float level(std::size_t i) const noexcept { return levels_[i]; }
  float min_level() const noexcept { return levels_.front(); }
  float max_level() const noexcept { return levels_.back(); }

  /// #{ i : v > t[i] }: the nearest level's index (ties to the lower; NaN: 0).
  std::size_t nearest_level_index(float v) const noexcept {
    if (thresholds_.size() <= 16) {  // branchless count: short tables, unpredictable data
      std::size_t k = 0;
      for (float t : thresholds_) k += v > t;
      return k;
    }
    // lower_bound: the first t >= v, i.e. the count of t < v (none for NaN).
    return static_cast<std::size_t>(std::lower_bound(thresholds_.begin(), thresholds_.end(), v) -
                                    thresholds_.begin());
  }
  /// The nearest level (clamped at the ends); NaN gives NaN.
  float nearest_level(float v) const noexcept {
    return std::isnan(v) ? v + v : levels_[nearest_level_index(v)];
  }

  bool operator==(const Codebook& b) const noexcept {
    return levels_ == b.levels_ && thresholds_ == b.thresholds_;
  }
  bool operator!=(const Codebook& b) const noexcept { return !(*this == b); }

 private:
  void init(const float* levels, std::size_t count, const char* where) {
    FQ_CHECK(count >= 2, ErrorCode::kInvalidArgument,
             detail::msg(where, ": a codebook needs at least 2 levels, got ", count));
    for (std::size_t i = 0; i < count; ++i) {
      FQ_CHECK(std::isfinite(levels[i]), ErrorCode::kInvalidArgument,
               detail::msg(where, ": level ", i, " is ", levels[i], "; levels must be finite"));
      FQ_CHECK(i == 0 || levels[i] > levels[i - 1], ErrorCode::kInvalidArgument,
               detail::msg(where, ": level ", i, " (", levels[i], ") is not greater than level ",
                           i - 1, " (", levels[i - 1],
                           "); levels must be strictly increasing (sorted, no duplicates)"));
    }
    levels_.assign(levels, levels + count);
    thresholds_.resize(count - 1);
    for (std::size_t i = 0; i + 1 < count; ++i)
      thresholds_[i] = detail::midpoint_round_down(levels[i], levels[i + 1]);
  }

  std::vector<float> levels_;
  std::vector<float> thresholds_;
};

/// Levels sign * base^-k, k = 0 .. exponents-1, each f32(pow(double(base), -k)) (rounded
/// once); is_signed: both signs (else only positive); with_zero: 0 as well. Sorted. The
/// largest magnitude is 1. base > 1 and finite, exponents >= 1, every magnitude a normal
/// float, and at least 2 levels in all (else kInvalidArgument).
inline Codebook make_log_codebook(float base, int exponents, bool with_zero, bool is_signed) {
  constexpr const char* kWhere = "fq::make_log_codebook";
  FQ_CHECK(std::isfinite(base) && base > 1.0f, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": the base must be finite and > 1, got ", base));
  FQ_CHECK(exponents >= 1, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": exponents must be >= 1, got ", exponents));
  std::vector<float> mag;  // decreasing: 1, base^-1, ...
  for (int k = 0; k < exponents; ++k) {
    const float m = static_cast<float>(std::pow(static_cast<double>(base), -k));
    FQ_CHECK(m >= std::numeric_limits<float>::min() && (mag.empty() || m < mag.back()),
             ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": base^-", k, " = ", m,
                         " is not a normal float below the previous level; use fewer exponents"));
    mag.push_back(m);
  }
  std::vector<float> lv;
  if (is_signed)
    for (float m : mag) lv.push_back(-m);  // -1, ..., -base^-(e-1)
  if (with_zero) lv.push_back(0.0f);
  for (auto it = mag.rbegin(); it != mag.rend(); ++it) lv.push_back(*it);
  FQ_CHECK(lv.size() >= 2, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": ", lv.size(),
                       " level; use exponents >= 2, with_zero or is_signed for at least 2"));
  return Codebook(lv);
}

/// Powers of two: the levels {0 if with_zero} U {+-2^-k, k = 0 .. exponents-1} (the minus
/// signs only if is_signed), max 1; make_log_codebook(2, ...), every level exact.
inline Codebook make_pow2_codebook(int exponents, bool with_zero, bool is_signed) {
  FQ_CHECK(exponents >= 1 && exponents <= 126, ErrorCode::kInvalidArgument,
           detail::msg("fq::make_pow2_codebook: exponents must be in [1, 126] (2^-125 is the "
                       "smallest normal level used), got ",
                       exponents));
  return make_log_codebook(2.0f, exponents, with_zero, is_signed);
}

/// Static codebook types (the Book parameter of fq::CodebookFakeQuantizer).
struct Nf4 {
  static constexpr const char* kName = "NF4";
  static Codebook codebook() { return Codebook::nf4(); }
};
/// NF4 with bitsandbytes' decision constants (see the file comment).
struct Nf4Bitsandbytes {
  static constexpr const char* kName = "NF4 (bitsandbytes thresholds)";
  static Codebook codebook() { return Codebook::nf4_bitsandbytes(); }
};
/// Signed powers of two with zero: 0, +-2^-k for k = 0 .. Exponents-1 (2 * Exponents + 1
/// levels; Exponents = 7 gives 15 levels, a 4-bit code).
template <int Exponents>
struct Pow2Signed {
  static_assert(Exponents >= 1 && Exponents <= 126, "Pow2Signed: Exponents must be in [1, 126].");
  static constexpr const char* kName = "signed powers of two";
  static Codebook codebook() { return make_pow2_codebook(Exponents, true, true); }
};
/// The codebook is given at run time (fq::CodebookFakeQuantizer's constructor).
struct RuntimeCodebook {
  static constexpr const char* kName = "run-time codebook";
};

namespace detail {

/// The per-scale constants of codebook fake quantization (file comment).
struct CodebookScale {
  float scale;   ///< s (>= 0)
  float inv;     ///< f32(1/s), or 1 for s == 0
  bool divide;   ///< 1/s overflows: x / s instead
  float lo, hi;  ///< L[0] * s, L[n-1] * s: the STE range
};
inline CodebookScale codebook_scale(const Codebook& book, float s) noexcept {
  CodebookScale p;
  p.scale = s;
  p.inv = s == 0.0f ? 1.0f : 1.0f / s;
  p.divide = !std::isfinite(p.inv);
  p.lo = book.min_level() * s;
  p.hi = book.max_level() * s;
  return p;
}
/// The scalar reference of one element (file comment); `in` gets the mask bit.
inline float codebook_fake_quant(const Codebook& book, float x, const CodebookScale& p,
                                 bool& in) noexcept {
  const float u = p.divide ? x / p.scale : x * p.inv;
  in = x >= p.lo && x <= p.hi;
  if (std::isnan(x)) return x + x;
  return book.level(book.nearest_level_index(u)) * p.scale;
}
/// max |x[i]| over the finite elements (0 if none): NaN and +-Inf do not set a block's scale.
inline float finite_absmax(const float* x, std::int64_t n) noexcept {
  float m = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a <= std::numeric_limits<float>::max() && a > m) m = a;
  }
  return m;
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_FORMAT_CODEBOOK_HPP_
