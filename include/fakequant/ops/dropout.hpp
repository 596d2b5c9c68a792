// SPDX-License-Identifier: MIT
// fakequant/ops/dropout.hpp: dropout — inverted dropout with a counter-based mask on a Tape.
//
// Forward (training, 0 < p < 1): y[i] = m[i] ? x[i] · s : 0, s = 1 / (1 − p) (float), where
//   m[i] = [h(seed, i) >= ⌊p · 2⁶⁴⌋] and h(seed, i) is output i (0-based) of the splitmix64
//   generator whose state starts at mix(seed): h = mix(mix(seed) + (i + 1) · γ), γ =
//   0x9E3779B97F4A7C15, mix = splitmix64's output function (a bijection). Mixing the seed first
//   keeps seeds that differ by multiples of γ (seed + k·γ per call, say) from giving shifted
//   copies of one stream. P(m[i]) = 1 − p up to 2⁻⁶⁴. The mask depends only on (seed, i):
//   not on threads, call order, or the tape.
// Gradient: dx[i] += m[i] ? dy[i] · s : 0 (the mask is kept on the tape as one byte per
//   element).
// training == false, or p == 0: returns x itself (no copy, no node). p == 1: y = 0 with no
//   gradient flowing to x. p outside [0, 1] (or NaN) is ErrorCode::kInvalidArgument.
// Differs from PyTorch: its masks come from the global Philox/MT generator (so the same seed
// does not give PyTorch's mask), and a dropped element is exactly 0 even when x is Inf or NaN
// (PyTorch multiplies: NaN). Reusing a seed reuses the mask: give each dropout site and each
// step its own seed.
#ifndef FQ_OPS_DROPOUT_HPP_
#define FQ_OPS_DROPOUT_HPP_

#include <cstdint>  // uint64_t, uint8_t

#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// splitmix64's output function (Steele, Lea, Flood 2014; Vigna's constants).
inline std::uint64_t splitmix64_mix(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/// Output i (0-based) of splitmix64 from the state `key` = splitmix64_mix(seed).
inline std::uint64_t dropout_hash_keyed(std::uint64_t key, std::uint64_t i) noexcept {
  return splitmix64_mix(key + (i + 1) * 0x9E3779B97F4A7C15ull);
}
/// The dropout hash h(seed, i) (file comment).
inline std::uint64_t dropout_hash(std::uint64_t seed, std::uint64_t i) noexcept {
  return dropout_hash_keyed(splitmix64_mix(seed), i);
}
/// ⌊p · 2⁶⁴⌋ for 0 <= p < 1: element i is kept iff dropout_hash >= this.
inline std::uint64_t dropout_threshold(float p) noexcept {
  // Exact: a float p < 1 has 24 significant bits, so p · 2⁶⁴ < 2⁶⁴ is a double integer.
  return static_cast<std::uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
}
}  // namespace impl

/// Inverted dropout with a mask from (seed, element index); see the file comment.
inline Var dropout(Tape& tape, const Var& x, float p, std::uint64_t seed, bool training = true) {
  fq::detail::check_tape(tape, {&x}, "dropout");
  FQ_CHECK(p >= 0.0f && p <= 1.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg("dropout: p = ", p, " is outside [0, 1]"));
  if (!training || p == 0.0f) return x;
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  const std::int64_t n = x.numel();
  if (n == 0) return y;
  if (p == 1.0f) {  // everything dropped: y = 0 and dx += 0 (no closure needed)
    y.array().setZero();
    return y;
  }
  const float s = 1.0f / (1.0f - p);
  const std::uint64_t t = impl::dropout_threshold(p);
  const std::uint64_t key = impl::splitmix64_mix(seed);
  // Two plain loops (the mask, then y) rather than one: compilers vectorise the 64-bit hash
  // loop on their own where the ISA has 64-bit lane multiplies (AVX-512DQ at -O3).
  std::uint8_t* mask = tape.scratch<std::uint8_t>(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    mask[i] = impl::dropout_hash_keyed(key, static_cast<std::uint64_t>(i)) >= t ? 1 : 0;
  const float* xv = x.value();
  float* yv = y.value();
  for (std::int64_t i = 0; i < n; ++i) yv[i] = mask[i] ? xv[i] * s : 0.0f;
  if (need)
    tape.push_backward([x, y, mask, n, s] {
      const float* dy = y.grad();
      float* dx = x.grad();
      for (std::int64_t i = 0; i < n; ++i) dx[i] += mask[i] ? dy[i] * s : 0.0f;
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_DROPOUT_HPP_
