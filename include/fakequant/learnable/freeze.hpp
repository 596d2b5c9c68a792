// SPDX-License-Identifier: MIT
// fakequant/learnable/freeze.hpp: fq::freeze — the fixed quantizer (fq::FakeQuantizer) whose
// forward equals a learnable quantizer's forward now, for convert, export and inspection.
//
//   LSQ / LSQ+ (LsqQuantizer<S>)  y = (clamp(rne(x·f32(1/s)) + zf, qmin, qmax) − zf)·s with
//                                 s = Restriction(ScaleParam(p)) and zf = clamp(rne(z)) per
//                                 channel (learnable/lsq.hpp): the snapshot holds exactly these
//                                 float32 s and integer zf, the same range, and the scheme
//                                 FrozenLsqScheme<S> whose numerics are the LSQ forward's (so
//                                 the two forwards call the same kernel: equal bit for bit).
//   PACT (Pact<Bits>)             y = fq(clamp(x, 0, α)) with s = f32(α / (2^Bits − 1)), z = 0
//                                 on [0, 2^Bits − 1]: the snapshot is that per-tensor quantizer,
//                                 saturating (OverflowSaturate: +Inf, 1e30 -> the top level; NaN
//                                 -> 0, as PACT). Its levels equal PACT's: for x > α both give
//                                 the top level, since rne(α·f32(1/s)) = 2^Bits − 1 (the relative
//                                 error of α·f32(1/s) is a few ulp, far below 1/2^17).
// The mapping of an LSQ snapshot is Affine: its zero points are learned values, checked where a
// consumer needs them to be 0 (convert's weights). A LsqQuantizer that holds no qparams yet
// (has_qparams() false: neither set nor trained) gives a snapshot without qparams, which
// convert refuses as uncalibrated; a PACT quantizer always has them (α is given at
// construction).
#ifndef FQ_LEARNABLE_FREEZE_HPP_
#define FQ_LEARNABLE_FREEZE_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // false_type, true_type, conditional_t, is_same
#include <vector>       // vector

#include <fakequant/learnable/lsq.hpp>
#include <fakequant/learnable/pact.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/qscheme.hpp>

namespace fq {

/// The fixed scheme of an LSQ snapshot: a run-time range, Affine, the LSQ granularity, and
/// the LSQ forward's numerics.
template <class LsqS>
using FrozenLsqScheme =
    QScheme<RuntimeRange, Affine, typename LsqS::granularity, RoundHalfEven, MulByInverse,
            MaskedSte,
            std::conditional_t<
                std::is_same<typename LsqS::numerics::forward_numerics, TorchNumerics>::value,
                OverflowToQmin, OverflowSaturate>,
            IntegerZeroPoint>;
/// The fixed scheme of a PACT snapshot: unsigned Bits-bit levels, zero point 0, per tensor,
/// saturating (PACT clips before it quantizes: +Inf and 1e30 go to the top level, not to qmin).
template <int Bits>
using FrozenPactScheme = QScheme<IntRange<Bits, false>, Affine, PerTensor, RoundHalfEven,
                                 MulByInverse, MaskedSte, OverflowSaturate>;

/// True for the learnable quantizers freeze() takes.
template <class Q>
struct is_freezable : std::false_type {};
template <class S>
struct is_freezable<LsqQuantizer<S>> : std::true_type {};
template <int Bits>
struct is_freezable<Pact<Bits>> : std::true_type {};

/// The snapshot of an LSQ quantizer's forward (file comment).
template <class S>
FakeQuantizer<FrozenLsqScheme<S>> freeze(const LsqQuantizer<S>& q) {
  using Frozen = FrozenLsqScheme<S>;
  static_assert(
      std::is_same<typename Frozen::numerics, typename S::numerics::forward_numerics>::value,
      "freeze: the LSQ forward numerics have no fixed-scheme equivalent.");
  FakeQuantizer<Frozen> f(q.channels(), q.range());  // one channel per tensor
  if (!q.has_qparams()) return f;
  const auto n = static_cast<std::size_t>(q.channels());
  std::vector<float> s(n);
  std::vector<std::int32_t> z(n);
  for (std::size_t c = 0; c < n; ++c) {
    s[c] = q.scale(static_cast<std::int64_t>(c));
    z[c] = static_cast<std::int32_t>(q.forward_zero_point(static_cast<std::int64_t>(c)));
  }
  f.set_qparams(s, z);
  return f;
}

/// The snapshot of a PACT quantizer's forward (file comment).
template <int Bits>
FakeQuantizer<FrozenPactScheme<Bits>> freeze(const Pact<Bits>& p) {
  FakeQuantizer<FrozenPactScheme<Bits>> f;
  f.set_qparams(detail::pact_params<Bits>(p.alpha(), "freeze(Pact)").scale, 0);
  return f;
}

}  // namespace fq

#endif  // FQ_LEARNABLE_FREEZE_HPP_
