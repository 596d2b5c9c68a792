// SPDX-License-Identifier: MIT
// tests/test_util.hpp: data generators and bitwise comparison helpers for the tests.
#ifndef FQ_TESTS_TEST_UTIL_HPP_
#define FQ_TESTS_TEST_UTIL_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fakequant/base/error.hpp>

namespace fq_test {

/// The bit pattern of a float or double.
inline std::uint64_t bits_of(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
inline std::uint64_t bits_of(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
inline float float_from_bits(std::uint32_t b) {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
inline double double_from_bits(std::uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

/// The ErrorCode of the fq::Error that f() throws, or a default ErrorCode if it throws none.
template <class F>
fq::ErrorCode error_code_of(F&& f) {
  try {
    f();
  } catch (const fq::Error& e) {
    return e.code();
  }
  return fq::ErrorCode{};
}

/// The message of the fq::Error that f() throws, or "" if it throws none.
template <class F>
std::string error_message_of(F&& f) {
  try {
    f();
  } catch (const fq::Error& e) {
    return e.what();
  }
  return "";
}

/// Index of the first element whose bits differ, or -1.
template <class T>
std::int64_t first_bit_mismatch(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (bits_of(a[i]) != bits_of(b[i])) return static_cast<std::int64_t>(i);
  return -1;
}

/// Random values around the grid of scale `s`: Gaussian spread over ~1.5x the range, exact
/// ties, values at and just beyond the bounds, and (if `specials`) NaN, +-Inf, -0, huge,
/// denormal values.
template <class T>
std::vector<T> make_fq_input(std::size_t n, float s, std::int64_t qmin, std::int64_t qmax,
                             std::int32_t z, std::uint32_t seed, bool specials = true) {
  std::mt19937 rng(seed);
  const double lo = (double(qmin) - z) * s, hi = (double(qmax) - z) * s;
  const double mid = (lo + hi) / 2, half = (hi - lo) / 2 + s;
  std::normal_distribution<double> g(mid, half * 0.75);
  std::uniform_int_distribution<int> kind(0, 19);
  std::uniform_int_distribution<std::int64_t> lev(qmin - 3, qmax + 3);
  std::vector<T> x(n);
  for (auto& v : x) {
    const int k = kind(rng);
    if (k < 12) {
      v = static_cast<T>(g(rng));
    } else if (k < 16) {  // exact ties (k + 0.5) * s
      v = static_cast<T>((double(lev(rng) - z) + 0.5) * s);
    } else if (k < 18) {  // on the grid
      v = static_cast<T>(double(lev(rng) - z) * s);
    } else if (specials) {
      static const T sp[] = {std::numeric_limits<T>::quiet_NaN(),
                             std::numeric_limits<T>::infinity(),
                             -std::numeric_limits<T>::infinity(),
                             T(-0.0),
                             T(1e-40),
                             T(3e38),
                             T(-3e38),
                             T(1e20),
                             T(-1e20),
                             std::numeric_limits<T>::denorm_min()};
      v = sp[static_cast<std::size_t>(lev(rng) % 10 + 10) % 10];
    } else {
      v = static_cast<T>(g(rng));
    }
  }
  return x;
}

/// Constants the tests share (one definition, so that test files can form unity sources).
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kEps = std::numeric_limits<float>::epsilon();

/// The value of the sorted table t nearest a >= 0, ties to the even index (= the even code of
/// a format whose table lists its codes in order); saturates at t.back().
inline double nearest_even(const std::vector<double>& t, double a) {
  if (a >= t.back()) return t.back();
  const auto hi = static_cast<std::size_t>(std::upper_bound(t.begin(), t.end(), a) - t.begin());
  const std::size_t lo = hi - 1;
  const double dl = a - t[lo], dh = t[hi] - a;
  if (dl != dh) return dl < dh ? t[lo] : t[hi];
  return lo % 2 == 0 ? t[lo] : t[hi];
}

}  // namespace fq_test

#endif  // FQ_TESTS_TEST_UTIL_HPP_
