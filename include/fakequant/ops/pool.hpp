// SPDX-License-Identifier: MIT
// fakequant/ops/pool.hpp: max and average 2-D pooling (NCHW, no padding) on a Tape.
//
//   max_pool2d: y[n,c,i,j] = max over the k×k window at (i·s, j·s); dx[argmax] += dy
//               (the first maximum in row-major window order wins ties, as PyTorch; NaN wins).
//   avg_pool2d: y = window mean; dx[window] += dy / k².
// OH = (H − k) / s + 1 (floor), likewise OW.
#ifndef FQ_OPS_POOL_HPP_
#define FQ_OPS_POOL_HPP_

#include <cstdint>  // int32_t, int64_t
#include <limits>   // numeric_limits

#include <fakequant/base/config.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
struct PoolGeometry {
  std::int64_t n, c, h, w, oh, ow, k, s;
  static PoolGeometry make(const Var& x, std::int64_t k, std::int64_t s, const char* op) {
    FQ_CHECK(x.shape().rank == 4, ErrorCode::kShapeMismatch,
             fq::detail::msg(op, ": x ", x.shape().str(), " must be NCHW"));
    FQ_CHECK(k > 0 && s > 0 && k <= x.size(2) && k <= x.size(3), ErrorCode::kInvalidArgument,
             fq::detail::msg(op, ": window ", k, " stride ", s, " invalid for ", x.shape().str()));
    return {x.size(0),
            x.size(1),
            x.size(2),
            x.size(3),
            (x.size(2) - k) / s + 1,
            (x.size(3) - k) / s + 1,
            k,
            s};
  }
};
}  // namespace impl

/// Max pooling with a k×k window and stride s (default s = k).
inline Var max_pool2d(Tape& tape, const Var& x, std::int64_t k, std::int64_t s = 0) {
  fq::detail::check_tape(tape, {&x}, "max_pool2d");
  const auto g = impl::PoolGeometry::make(x, k, s > 0 ? s : k, "max_pool2d");
  const bool need = fq::detail::needs_grad(tape, {&x});
  // The arg-max indices are int32 offsets within one input plane.
  FQ_CHECK(!need || g.h * g.w <= std::numeric_limits<std::int32_t>::max(), ErrorCode::kOutOfMemory,
           fq::detail::msg("max_pool2d: an input plane of ", g.h, "x", g.w,
                           " elements exceeds the int32 arg-max index"));
  Var y = tape.variable({g.n, g.c, g.oh, g.ow}, need);
  std::int32_t* arg =
      need ? tape.scratch<std::int32_t>(static_cast<std::size_t>(y.numel())) : nullptr;
  FQ_PARALLEL_FOR
  for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x.value() + nc * g.h * g.w;
    float* yp = y.value() + nc * g.oh * g.ow;
    std::int32_t* ap = arg ? arg + nc * g.oh * g.ow : nullptr;
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) {
        const std::int64_t first = (i * g.s) * g.w + j * g.s;
        std::int64_t best = first;
        float bv = xp[first];
        for (std::int64_t p = 0; p < g.k; ++p)
          for (std::int64_t q = 0; q < g.k; ++q) {
            // Branch-free: take v if v > bv, or v is NaN while bv is not (NaN propagates).
            const float v = xp[first + p * g.w + q];
            const bool take = !(v <= bv) && bv == bv;
            best = take ? first + p * g.w + q : best;
            bv = take ? v : bv;
          }
        yp[i * g.ow + j] = bv;
        if (ap) ap[i * g.ow + j] = static_cast<std::int32_t>(best);
      }
  }
  if (need)
    tape.push_backward([x, y, g, arg] {
      const std::int64_t per = g.oh * g.ow;
      FQ_PARALLEL_FOR
      for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
        float* dx = x.grad() + nc * g.h * g.w;
        for (std::int64_t o = nc * per; o < (nc + 1) * per; ++o) dx[arg[o]] += y.grad()[o];
      }
    });
  return y;
}

/// Average pooling with a k×k window and stride s (default s = k).
inline Var avg_pool2d(Tape& tape, const Var& x, std::int64_t k, std::int64_t s = 0) {
  fq::detail::check_tape(tape, {&x}, "avg_pool2d");
  const auto g = impl::PoolGeometry::make(x, k, s > 0 ? s : k, "avg_pool2d");
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable({g.n, g.c, g.oh, g.ow}, need);
  const float inv = 1.0f / static_cast<float>(g.k * g.k);
  for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const float* xp = x.value() + nc * g.h * g.w;
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) {
        float acc = 0.0f;
        for (std::int64_t p = 0; p < g.k; ++p)
          for (std::int64_t q = 0; q < g.k; ++q) acc += xp[(i * g.s + p) * g.w + j * g.s + q];
        y.value()[(nc * g.oh + i) * g.ow + j] = acc * inv;
      }
  }
  if (need)
    tape.push_backward([x, y, g, inv] {
      for (std::int64_t nc = 0; nc < g.n * g.c; ++nc) {
        float* dx = x.grad() + nc * g.h * g.w;
        for (std::int64_t i = 0; i < g.oh; ++i)
          for (std::int64_t j = 0; j < g.ow; ++j) {
            const float d = y.grad()[(nc * g.oh + i) * g.ow + j] * inv;
            for (std::int64_t p = 0; p < g.k; ++p)
              for (std::int64_t q = 0; q < g.k; ++q) dx[(i * g.s + p) * g.w + j * g.s + q] += d;
          }
      }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_POOL_HPP_
