// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_requant.hpp: the int8 GEMM followed by an output pipeline.
//
//   out[m * out_row + n * out_col] = pipeline(C[m][n], channel_offset + n)   saturated to Out
// with C = (A - za) * W^T as gemm.hpp. The int32 C is produced kRowChunk rows at a time into
// a per-thread scratch buffer (so it stays in cache for the epilogue); the output strides let
// a convolution write NCHW (channel-major) directly. The standard requantizing pipelines run
// a bit-identical vector epilogue on the AMX, VNNI and AVX2 paths (requant_avx512.hpp for AMX
// and VNNI, requant_avx2.hpp); a strided output row is requantized into a small contiguous byte row
// first and then scattered. Other pipelines and the scalar path run the scalar stages.
// Checked once per call, before anything is computed: the GEMM arguments (gemm.hpp), the
// activation zero point, every stage's parameters (OutputPipeline::check: null arrays,
// multipliers outside [-31, 31] shifts), and the output: non-null, channel_offset >= 0, its
// extent within int64, no two (m, n) on the same byte (e.g. col_stride 0 with N > 1), and no
// byte shared with the activations — kInvalidLayout otherwise. M, N or K = 0 are well
// defined (K = 0: the pipeline applied to 0; A is not read and may be null).
#ifndef FQ_KERNELS_GEMM_REQUANT_HPP_
#define FQ_KERNELS_GEMM_REQUANT_HPP_

#include <algorithm>    // min, max
#include <cstdint>      // int32_t, int64_t, uint8_t, int8_t
#include <limits>       // numeric_limits
#include <tuple>        // get
#include <type_traits>  // is_same, integral_constant
#include <vector>       // vector

#include <fakequant/base/checked.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/output_stages.hpp>
#include <fakequant/kernels/requant_avx2.hpp>
#include <fakequant/kernels/requant_avx512.hpp>

namespace fq {

namespace detail {
/// Recognises the standard requantizing pipelines that have a vector epilogue
/// (requant_avx512.hpp): [BiasAdd,] Requantize<SingleRounding<RoundHalfEven> | DoubleRounding>,
/// AddZeroPoint, Clamp. Other pipelines run the scalar stages.
template <class P>
struct StdRequant : std::false_type {};
template <class R>
inline constexpr bool kVectorRounding =
    std::is_same<R, SingleRounding<RoundHalfEven>>::value || std::is_same<R, DoubleRounding>::value;
template <class R>
struct StdRequant<OutputPipeline<BiasAdd, Requantize<R>, AddZeroPoint, Clamp>>
    : std::integral_constant<bool, kVectorRounding<R>> {
  static constexpr bool kSingle = !std::is_same<R, DoubleRounding>::value;
  template <class P>
  static const std::int32_t* bias(const P& p) {
    return std::get<0>(p.stages).bias;
  }
  static constexpr std::size_t kOffset = 1;
};
template <class R>
struct StdRequant<OutputPipeline<Requantize<R>, AddZeroPoint, Clamp>>
    : std::integral_constant<bool, kVectorRounding<R>> {
  static constexpr bool kSingle = !std::is_same<R, DoubleRounding>::value;
  template <class P>
  static const std::int32_t* bias(const P&) {
    return nullptr;
  }
  static constexpr std::size_t kOffset = 0;
};
}  // namespace detail

/// Strided output of gemm_requant: element (m, n) at data[m * row_stride + n * col_stride].
template <class Out>
struct GemmOutput {
  Out* data;
  std::int64_t row_stride;
  std::int64_t col_stride;
  std::int64_t channel_offset;  ///< added to n for per-channel stages
};

namespace detail {
/// The output checks of gemm_requant (file comment); a is [m, k] with row stride lda.
template <class A, class Out>
void check_gemm_output(const A* a, std::int64_t m, std::int64_t lda, std::int64_t k,
                       const GemmOutput<Out>& out, std::int64_t n, const char* where) {
  FQ_CHECK(out.channel_offset >= 0, ErrorCode::kInvalidArgument,
           msg(where, ": negative channel offset ", out.channel_offset));
  checked_add(out.channel_offset, n, where, "the last channel");
  if (m == 0 || n == 0) return;
  FQ_CHECK(out.data != nullptr, ErrorCode::kInvalidArgument, msg(where, ": null output"));
  // As a strided [M, N] view: its construction bounds the extent, and the view's test refuses
  // overlapping rows or columns.
  const std::int64_t shape[2] = {m, n}, strides[2] = {out.row_stride, out.col_stride};
  const TensorView<Out> view(out.data, 2, shape, strides);
  FQ_CHECK(provably_non_overlapping(view), ErrorCode::kInvalidLayout,
           msg(where, ": the output [", m, ", ", n, "] with row stride ", out.row_stride,
               " and column stride ", out.col_stride, " overlaps itself"));
  if (k == 0) return;  // A is not read
  const auto reach = [](std::int64_t e, std::int64_t st) { return (e - 1) * st; };
  const std::int64_t r0 = reach(m, out.row_stride), r1 = reach(n, out.col_stride);
  const std::int64_t lo = (r0 < 0 ? r0 : 0) + (r1 < 0 ? r1 : 0);
  const std::int64_t hi = (r0 > 0 ? r0 : 0) + (r1 > 0 ? r1 : 0);
  const std::int64_t a_bytes = ((m - 1) * lda + k) * static_cast<std::int64_t>(sizeof(A));
  FQ_CHECK(!byte_ranges_overlap(a, a_bytes,
                                reinterpret_cast<const unsigned char*>(out.data) +
                                    lo * static_cast<std::int64_t>(sizeof(Out)),
                                (hi - lo + 1) * static_cast<std::int64_t>(sizeof(Out))),
           ErrorCode::kInvalidLayout, msg(where, ": the output overlaps the activations"));
}
}  // namespace detail

/// C = (A - a_zero_point) * W^T, then `pipeline` per element into `out`.
/// A is uint8 (a_zero_point in [0, 255]) or int8 (in [-128, 127]); Out is uint8 or int8.
/// Arch: the instruction set the dispatcher and the scalar stages are compiled for (gemm.hpp).
template <class Arch = DefaultArch, class A, class Out, class Pipeline>
void gemm_requant(const A* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                  std::int32_t a_zero_point, const Pipeline& pipeline, GemmOutput<Out> out,
                  Isa isa = Isa::kAuto) {
  static_assert(std::is_same<A, std::uint8_t>::value || std::is_same<A, std::int8_t>::value,
                "gemm_requant: activations must be std::uint8_t or std::int8_t.");
  static_assert(std::is_same<Out, std::uint8_t>::value || std::is_same<Out, std::int8_t>::value,
                "gemm_requant: the output must be std::uint8_t or std::int8_t.");
  constexpr const char* kWhere = "gemm_requant";
  constexpr std::int64_t kRowChunk = 96;
  constexpr bool kFlip = std::is_same<A, std::int8_t>::value;
  const std::int64_t n = w.n();
  detail::check_gemm_args(a, sizeof(A), m, lda, w, nullptr, 0, 0, kWhere);
  FQ_CHECK(kFlip ? (a_zero_point >= -128 && a_zero_point <= 127)
                 : (a_zero_point >= 0 && a_zero_point <= 255),
           ErrorCode::kInvalidZeroPoint,
           detail::msg(kWhere, ": activation zero point ", a_zero_point,
                       " is outside the activation type's range"));
  detail::check_gemm_output(a, m, lda, w.k(), out, n, kWhere);
  if constexpr (detail::has_stage_check<Pipeline>::value)
    pipeline.check(out.channel_offset, n, kWhere);
  const Isa path = resolve_isa(isa, kWhere);
  if (m == 0 || n == 0) return;
  // Row m0 of A; with K = 0 A is never read (and may be null): no offset from it.
  auto a_rows = [&](std::int64_t m0) { return w.k() == 0 ? a : a + m0 * lda; };
  thread_local std::vector<std::int32_t> scratch;
  const std::int64_t rows = std::min(m, kRowChunk);
  if (scratch.size() < static_cast<std::size_t>(rows * n))
    scratch.resize(static_cast<std::size_t>(rows * n));
  auto gemm_rows = [&](std::int64_t m0, std::int64_t mr) {
    if constexpr (std::is_same<A, std::uint8_t>::value)
      gemm_u8s8s32<Arch>(a_rows(m0), mr, lda, w, scratch.data(), n, a_zero_point, path);
    else
      gemm_s8s8s32<Arch>(a_rows(m0), mr, lda, w, scratch.data(), n, a_zero_point, path);
  };
#if FQ_KERNELS_X86
  if constexpr (detail::StdRequant<Pipeline>::value) {
    if (path == Isa::kAmx || path == Isa::kAvx512Vnni || path == Isa::kAvx2) {
      using S = detail::StdRequant<Pipeline>;
      constexpr std::size_t o = S::kOffset;
      const auto& rq = std::get<o>(pipeline.stages);
      const auto& zp = std::get<o + 1>(pipeline.stages);
      const auto& cl = std::get<o + 2>(pipeline.stages);
      // The zero-point compensation is folded into the epilogue: the GEMM runs raw.
      const std::int32_t comp_scale = a_zero_point + (kFlip ? 128 : 0);
      thread_local std::vector<std::int32_t> mult, shift, comp;
      thread_local std::vector<std::int64_t> consts;
      mult.resize(static_cast<std::size_t>(n));
      shift.resize(static_cast<std::size_t>(n));
      comp.resize(static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j) {
        comp[static_cast<std::size_t>(j)] = -comp_scale * w.col_sums()[j];
        const QuantizedMultiplier qm = rq.multipliers[rq.per_channel ? out.channel_offset + j : 0];
        mult[static_cast<std::size_t>(j)] = qm.multiplier;
        shift[static_cast<std::size_t>(j)] = qm.shift;
      }
      const std::int64_t np = (n + 7) / 8 * 8;
      consts.resize(static_cast<std::size_t>(4 * np));
      const std::int32_t* bias = S::bias(pipeline);
      detail::prepare_requant_row<Arch, S::kSingle>(bias ? bias + out.channel_offset : nullptr,
                                                    comp.data(), mult.data(), shift.data(), n,
                                                    consts.data());
      constexpr std::int32_t omin = std::numeric_limits<Out>::min(),
                             omax = std::numeric_limits<Out>::max();
      auto inside = [&](std::int32_t v) { return std::min(std::max(v, omin), omax); };
      const detail::RequantRowParams rp{
          consts.data(), consts.data() + np, consts.data() + 2 * np, consts.data() + 3 * np,
          zp.zero_point, inside(cl.lo),      inside(cl.hi)};
      auto requant_row = [&](const std::int32_t* c, Out* dst) {
        if (path == Isa::kAvx512Vnni || path == Isa::kAmx)  // every AMX CPU has AVX-512 VNNI
          detail::requant_row_avx512<S::kSingle>(c, n, rp, dst);
        else
          detail::requant_row_avx2<S::kSingle>(c, n, rp, dst);
      };
      thread_local std::vector<Out> row;  // a strided output row, before the scatter
      if (out.col_stride != 1) row.resize(static_cast<std::size_t>(n));
      for (std::int64_t m0 = 0; m0 < m; m0 += kRowChunk) {
        const std::int64_t mr = std::min(kRowChunk, m - m0);
        detail::gemm_raw<Arch, kFlip>(reinterpret_cast<const std::uint8_t*>(a_rows(m0)), mr, lda, w,
                                      scratch.data(), n, path);
        for (std::int64_t i = 0; i < mr; ++i) {
          Out* orow = out.data + (m0 + i) * out.row_stride;
          if (out.col_stride == 1) {
            requant_row(scratch.data() + i * n, orow);
          } else {
            requant_row(scratch.data() + i * n, row.data());
            for (std::int64_t j = 0; j < n; ++j)
              orow[j * out.col_stride] = row[static_cast<std::size_t>(j)];
          }
        }
      }
      return;
    }
  }
#endif
  for (std::int64_t m0 = 0; m0 < m; m0 += kRowChunk) {
    const std::int64_t mr = std::min(kRowChunk, m - m0);
    gemm_rows(m0, mr);
    for (std::int64_t i = 0; i < mr; ++i) {
      const std::int32_t* c = scratch.data() + i * n;
      Out* o = out.data + (m0 + i) * out.row_stride;
      for (std::int64_t j = 0; j < n; ++j)
        o[j * out.col_stride] = pipeline.template apply_to<Out>(c[j], out.channel_offset + j);
    }
  }
}

}  // namespace fq

#endif  // FQ_KERNELS_GEMM_REQUANT_HPP_
