// SPDX-License-Identifier: MIT
// fakequant/core/fake_quantize_scalar.hpp: scalar run kernels — the reference for SIMD.
//
// A run is n elements at a fixed stride. Forward: y = fake_quant_element(x) and one mask bit
// per element (fake_quant_element_wide for float tensors on ranges that are not float-exact).
// Backward (masked STE): dx = mask_multiply(dy, bit), a real multiplication by 1 or 0 as
// ATen's `dY * mask`, so a masked NaN/Inf gradient is NaN, every NaN comes out quieted, and a
// masked -g gives -0.0.
// Every kernel takes the architecture tag Arch (simd/arch.hpp) of the entry point that calls
// it, unused in the body: the loops are auto-vectorised for the caller's -m flags, so each
// instruction set must get its own instantiation (see simd/arch.hpp on the ODR).
#ifndef FQ_CORE_FAKE_QUANTIZE_SCALAR_HPP_
#define FQ_CORE_FAKE_QUANTIZE_SCALAR_HPP_

#include <cstddef>      // ptrdiff_t
#include <cstdint>      // int64_t
#include <type_traits>  // is_floating_point

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/scheme/numerics.hpp>

namespace fq {
namespace detail {

/// Forward over a run with constant parameters.
template <class Arch, class N, bool FloatZp, class T>
void fq_run_scalar(const T* x, std::ptrdiff_t xs, T* y, std::ptrdiff_t ys, std::int64_t n,
                   const ElementParams<T>& p, BitWriter* bw) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    bool in = false;
    const T v = x[i * xs];
    y[i * ys] =
        FloatZp ? fake_quant_element_float_zp<N>(v, p, in) : fake_quant_element<N>(v, p, in);
    if (bw) bw->put_bit(in);
  }
}

/// Forward over a run that walks the channel axis: element i uses scale[i], zero_point[i].
template <class Arch, class N, class Z, class T>
void fq_run_scalar_varying(const T* x, std::ptrdiff_t xs, T* y, std::ptrdiff_t ys, std::int64_t n,
                           const float* scale, const Z* zero_point, const QuantRange& r,
                           BitWriter* bw) noexcept {
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto p = make_element_params<N, T>(scale[i], static_cast<double>(zero_point[i]), r);
    bool in = false;
    const T v = x[i * xs];
    y[i * ys] =
        kFloatZp ? fake_quant_element_float_zp<N>(v, p, in) : fake_quant_element<N>(v, p, in);
    if (bw) bw->put_bit(in);
  }
}

/// Forward of a float run on a wide range (not float_exact_range) with constant parameters.
template <class Arch, class N, bool FloatZp>
void fq_run_wide(const float* x, std::ptrdiff_t xs, float* y, std::ptrdiff_t ys, std::int64_t n,
                 const WideParams& p, BitWriter* bw) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    bool in = false;
    y[i * ys] = fake_quant_element_wide<N, FloatZp>(x[i * xs], p, in);
    if (bw) bw->put_bit(in);
  }
}

/// Forward of a float run on a wide range walking the channel axis.
template <class Arch, class N, class Z>
void fq_run_wide_varying(const float* x, std::ptrdiff_t xs, float* y, std::ptrdiff_t ys,
                         std::int64_t n, const float* scale, const Z* zero_point,
                         const QuantRange& r, BitWriter* bw) noexcept {
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  for (std::int64_t i = 0; i < n; ++i) {
    const WideParams p = make_wide_params<N>(scale[i], static_cast<double>(zero_point[i]), r);
    bool in = false;
    y[i * ys] = fake_quant_element_wide<N, kFloatZp>(x[i * xs], p, in);
    if (bw) bw->put_bit(in);
  }
}

/// Masked STE backward over a run: dx = dy * bit (mask_multiply).
template <class Arch, class T>
void ste_run_scalar(const T* dy, std::ptrdiff_t dys, T* dx, std::ptrdiff_t dxs, std::int64_t n,
                    BitReader& br) noexcept {
  for (std::int64_t i = 0; i < n; ++i) dx[i * dxs] = mask_multiply(dy[i * dys], br.get(1) != 0);
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_FAKE_QUANTIZE_SCALAR_HPP_
