// SPDX-License-Identifier: MIT
// fakequant/kernels/sgemm_parallel.hpp: fq::sgemm over OpenMP threads, for the tape's linear
// and matmul.
//
//   C [m, n] (row stride ldc) = (accumulate ? C : 0) + A [m, k] · B [k, n]
//
// Rounding: that of fq::sgemm — every C element one chain of fused multiply-adds in ascending k
// (kernels/sgemm.hpp). A split of C into blocks changes no element's chain, so the bits depend
// neither on the number of parts nor on the thread count, nor on the other rows of A: a row of
// a batch gets the same bits in a batch of any size.
// Split: C is cut into `parts` blocks of whole micro-kernel panels, by columns (A packed once,
// shared; each block packs its own columns of B) when C has at least two column panels and
// that split is about as even as the split by rows (each block packs its rows of A and the
// whole B), else by rows. The blocks run under one `omp parallel for` when the caller compiles
// with OpenMP (FQ_PARALLEL_FOR), one thread each. sgemm_parts gives the number of parts a call
// should use: the thread count, fewer for a small product (a part of fewer than
// kSgemmPartWork multiply-adds does not repay a thread's start).
// Scratch: the caller passes sgemm_parallel_scratch_size(m, n, k, parts) floats, 64-byte aligned.
// Without kSgemmSimd<Arch> this is fq::sgemm_reference, serial (the same bits).
#ifndef FQ_KERNELS_SGEMM_PARALLEL_HPP_
#define FQ_KERNELS_SGEMM_PARALLEL_HPP_

#include <algorithm>  // min, max
#include <cstdint>    // int64_t

#include <fakequant/base/config.hpp>
#include <fakequant/kernels/sgemm.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fq {

/// A part of an sgemm_parallel call should do at least this many multiply-adds.
inline constexpr std::int64_t kSgemmPartWork = std::int64_t{1} << 18;

/// The threads an sgemm_parallel call started here would get: OpenMP's maximum outside a
/// parallel region, 1 inside one (nested regions are off by default) or without OpenMP.
inline std::int64_t sgemm_threads() noexcept {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

/// The parts for C [m, n] = A [m, k] · B: sgemm_threads(), at most one per kSgemmPartWork
/// multiply-adds, at least 1.
inline std::int64_t sgemm_parts(std::int64_t m, std::int64_t n, std::int64_t k) noexcept {
  const double work = double(std::max<std::int64_t>(m, 0)) * double(std::max<std::int64_t>(n, 0)) *
                      double(std::max<std::int64_t>(k, 1));
  const double cap = work / double(kSgemmPartWork);
  const std::int64_t threads = sgemm_threads();
  return cap < double(threads) ? std::max<std::int64_t>(1, static_cast<std::int64_t>(cap))
                               : threads;
}

namespace detail {
/// How sgemm_parallel cuts C: `count` blocks of `step` columns (by_columns) or rows, the last
/// one shorter.
struct SgemmSplit {
  bool by_columns = true;
  std::int64_t step = 0, count = 1;
};

template <class Arch>
SgemmSplit sgemm_split(std::int64_t m, std::int64_t n, std::int64_t parts) noexcept {
  using T = SgemmTile<Arch>;
  parts = std::max<std::int64_t>(parts, 1);
  // The largest block of each way, in C elements (whole panels per part); rows win only when
  // clearly smaller, since each row block packs all of B again.
  const auto largest = [parts](std::int64_t len, std::int64_t unit, std::int64_t other) {
    const std::int64_t panels = (len + unit - 1) / unit;
    return std::min(len, (panels + parts - 1) / parts * unit) * other;
  };
  SgemmSplit s;
  s.by_columns = n >= 2 * T::kNr && 10 * largest(m, T::kMr, n) >= 9 * largest(n, T::kNr, m);
  const std::int64_t len = s.by_columns ? n : m, unit = s.by_columns ? T::kNr : T::kMr;
  s.step = std::max<std::int64_t>(sgemm_round_up((len + parts - 1) / parts, unit), 1);
  s.count = len > 0 ? (len + s.step - 1) / s.step : 0;
  return s;
}
}  // namespace detail

/// Floats of the scratch of sgemm_parallel<Arch>(m, n, k, …, parts).
template <class Arch = DefaultArch>
std::int64_t sgemm_parallel_scratch_size(std::int64_t m, std::int64_t n, std::int64_t k,
                                         std::int64_t parts) noexcept {
  if constexpr (!kSgemmSimd<Arch>) {
    (void)m, (void)n, (void)k, (void)parts;
    return 0;
  } else {
    const detail::SgemmSplit s = detail::sgemm_split<Arch>(m, n, parts);
    // Each part's workspace starts on a cache line (the packed panels are read as vectors).
    const auto line = [](std::int64_t f) { return detail::sgemm_round_up(f, 16); };
    if (s.by_columns)
      return line(sgemm_packed_a_size<Arch>(m, k)) +
             s.count * line(sgemm_workspace_size<Arch>(s.step, k));
    return s.count * line(sgemm_scratch_size<Arch>(s.step, n, k));
  }
}

/// C [m, n] = (accumulate ? C : 0) + A · B in `parts` blocks, in parallel (file comment): the
/// bits of fq::sgemm for every `parts`. scratch: sgemm_parallel_scratch_size<Arch>(m, n, k,
/// parts) floats.
template <class Arch = DefaultArch>
void sgemm_parallel(std::int64_t m, std::int64_t n, std::int64_t k, SgemmOperand a, SgemmOperand b,
                    float* c, std::int64_t ldc, bool accumulate, float* scratch,
                    std::int64_t parts) noexcept {
  if constexpr (!kSgemmSimd<Arch>) {
    (void)scratch, (void)parts;
    sgemm_reference(m, n, k, a, b, c, ldc, accumulate);
  } else {
    if (m <= 0 || n <= 0) return;
    const detail::SgemmSplit s = detail::sgemm_split<Arch>(m, n, parts);
    const auto line = [](std::int64_t f) { return detail::sgemm_round_up(f, 16); };
    float* const work = s.by_columns ? scratch + line(sgemm_packed_a_size<Arch>(m, k)) : scratch;
    const std::int64_t per = line(s.by_columns ? sgemm_workspace_size<Arch>(s.step, k)
                                               : sgemm_scratch_size<Arch>(s.step, n, k));
    if (s.by_columns) sgemm_pack_a<Arch>(m, k, a, scratch);
    const auto block = [&](std::int64_t p) {
      const std::int64_t o = p * s.step, len = std::min(s.step, (s.by_columns ? n : m) - o);
      if (s.by_columns)
        sgemm_packed<Arch>(m, len, k, scratch,
                           {b.data + o * b.col_stride, b.row_stride, b.col_stride}, c + o, ldc,
                           accumulate, work + p * per);
      else
        sgemm<Arch>(len, n, k, {a.data + o * a.row_stride, a.row_stride, a.col_stride}, b,
                    c + o * ldc, ldc, accumulate, work + p * per);
    };
    if (s.count == 1) {
      block(0);  // no parallel region to start
      return;
    }
    FQ_PARALLEL_FOR
    for (std::int64_t p = 0; p < s.count; ++p) block(p);
  }
}

}  // namespace fq

#endif  // FQ_KERNELS_SGEMM_PARALLEL_HPP_
