// SPDX-License-Identifier: MIT
// fakequant against golden vectors produced by PyTorch 1.13 (tests/golden/gen_golden.py):
// per-tensor and per-channel fake quantization (values and masks, bit for bit — signs of zero
// included — with TorchNumerics against ATen's default x86 dispatch and TorchNumericsNoFma
// against ATEN_CPU_CAPABILITY=default, on every kernel path) and the four observers (min/max
// state and qparams after each batch).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <fakequant/fakequant.hpp>

#include "catch.hpp"
#include "golden/torch_golden_data.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;
using fq_test::double_from_bits;
using fq_test::float_from_bits;

template <class T, class Bits>
std::vector<T> decode(const void* bits, std::int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  const auto* b = static_cast<const Bits*>(bits);
  for (std::int64_t i = 0; i < n; ++i)
    std::memcpy(&v[static_cast<std::size_t>(i)], &b[i], sizeof(T));
  return v;
}

template <class T>
void require_bits(const std::vector<T>& got, const std::vector<T>& want, const fq::Mask& m,
                  const std::uint8_t* want_mask, const std::vector<T>& x, const char* name,
                  const char* variant) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO(name << " (" << variant << ") element " << i << " x " << x[i] << " want " << want[i]
              << " got " << got[i]);
    REQUIRE(fq_test::bits_of(got[i]) == fq_test::bits_of(want[i]));
    if (want_mask) REQUIRE(m.test_linear(static_cast<std::int64_t>(i)) == (want_mask[i] != 0));
  }
}

template <class N, class T, class Bits>
void check_per_tensor(const fq_golden::PerTensorCase& c, const void* y_bits,
                      const std::uint8_t* mask, fq::Isa path, const char* variant) {
  const auto x = decode<T, Bits>(c.x_bits, c.n);
  const auto want = decode<T, Bits>(y_bits, c.n);
  std::vector<T> y(x.size());
  fq::Mask m;
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {c.n}),
                                  TensorView<T>(y.data(), {c.n}), &m, static_cast<float>(c.scale),
                                  static_cast<std::int32_t>(c.zero_point),
                                  fq::QuantRange{c.quant_min, c.quant_max}, path);
  require_bits(y, want, m, mask, x, c.name, variant);
}

}  // namespace

TEST_CASE("golden: fake_quantize_per_tensor_affine(_cachemask)", "[golden][fake_quant]") {
  REQUIRE(sizeof(fq_golden::kPerTensorCases) > 0);
  int checked = 0, wide = 0;
  for (const auto& c : fq_golden::kPerTensorCases) {
    for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
      if (c.dtype_bits == 32) {
        check_per_tensor<fq::TorchNumerics, float, std::uint32_t>(c, c.y_bits, c.mask, path,
                                                                  "x86 dispatch");
        // An integer zero point: ATen's scalar kernel gives the same, and so does the
        // NoFma variant.
        check_per_tensor<fq::TorchNumericsNoFma, float, std::uint32_t>(c, c.y0_bits, c.mask0, path,
                                                                       "default cpu");
      } else {
        check_per_tensor<fq::TorchNumerics, double, std::uint64_t>(c, c.y_bits, c.mask, path,
                                                                   "x86 dispatch");
      }
    }
    wide += !fq::float_exact_range({c.quant_min, c.quant_max});
    ++checked;
  }
  CHECK(checked >= 20);
  CHECK(wide >= 100);  // ranges beyond float32's exact integers, up to int32
}

namespace {

template <class N>
void check_per_channel(const fq_golden::PerChannelCase& c, const std::uint32_t* y_bits,
                       const std::uint8_t* mask, const char* variant) {
  const auto x = decode<float, std::uint32_t>(c.x_bits, c.n);
  const auto want = decode<float, std::uint32_t>(y_bits, c.n);
  const auto s = decode<float, std::uint32_t>(c.scale_bits, c.channels);
  std::vector<float> y(x.size());
  fq::Mask m;
  // Contiguous row-major strides for the case's shape.
  std::int64_t strides[4] = {1, 1, 1, 1};
  for (int d = c.rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * c.shape[d + 1];
  const TensorView<const float> xs(x.data(), c.rank, c.shape, strides);
  const TensorView<float> ys(y.data(), c.rank, c.shape, strides);
  const fq::QuantRange r{c.quant_min, c.quant_max};
  for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    if (c.zero_point_is_float) {
      const auto z = decode<float, std::uint32_t>(c.zero_point_float_bits, c.channels);
      fq::fake_quantize_per_channel<N>(xs, ys, &m, s.data(), z.data(), c.channels, c.axis, r, path);
      require_bits(y, want, m, mask, x, c.name, variant);
      if (c.channels == 1) {  // a per-tensor float zero point follows the same rule
        std::fill(y.begin(), y.end(), -1.0f);
        fq::fake_quantize_per_tensor<N>(xs, ys, &m, s[0], z[0], r, path);
        require_bits(y, want, m, mask, x, c.name, variant);
      }
    } else {
      fq::fake_quantize_per_channel<N>(xs, ys, &m, s.data(), c.zero_point_int, c.channels, c.axis,
                                       r, path);
      require_bits(y, want, m, mask, x, c.name, variant);
    }
  }
}

}  // namespace

TEST_CASE("golden: fake_quantize_per_channel_affine", "[golden][fake_quant]") {
  int checked = 0, straddles = 0;
  for (const auto& c : fq_golden::kPerChannelCases) {
    check_per_channel<fq::TorchNumerics>(c, c.y_bits, c.mask, "x86 dispatch");
    check_per_channel<fq::TorchNumericsNoFma>(c, c.y0_bits, c.mask0, "default cpu");
    // The QScheme knobs select the same numerics.
    STATIC_REQUIRE(
        std::is_same<fq::QScheme<fq::RuntimeRange>::with_zero_point<fq::FloatZeroPoint>::numerics,
                     fq::TorchNumerics>::value);
    STATIC_REQUIRE(
        std::is_same<
            fq::QScheme<fq::RuntimeRange>::with_zero_point<fq::FloatZeroPointNoFma>::numerics,
            fq::TorchNumericsNoFma>::value);
    for (std::int64_t i = 0; i < c.n; ++i) straddles += c.y_bits[i] != c.y0_bits[i];
    ++checked;
  }
  CHECK(checked >= 8);
  // The fused and unfused float-zero-point kernels differ on the chosen boundary points.
  CHECK(straddles >= 20);
}

namespace {

template <class Scheme, class Observer>
void run_observer_case(const fq_golden::ObserverCase& c, Observer obs, fq::QuantRange range) {
  std::vector<float> s;
  std::vector<typename Scheme::zero_point_type> z;
  for (int k = 0; k < c.steps; ++k) {
    const auto& st = c.step[k];
    const auto x = decode<float, std::uint32_t>(st.x_bits, st.n);
    std::int64_t strides[4] = {1, 1, 1, 1};
    for (int d = c.rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * c.shape[d + 1];
    obs.observe(TensorView<const float>(x.data(), c.rank, c.shape, strides));
    obs.template calculate_qparams<Scheme>(range, s, z);
    REQUIRE(static_cast<std::int64_t>(s.size()) == st.channels);
    for (std::int64_t ch = 0; ch < st.channels; ++ch) {
      const auto cu = static_cast<std::size_t>(ch);
      INFO(c.name << " step " << k << " channel " << ch);
      REQUIRE(fq_test::bits_of(obs.min_val()[cu]) == st.min_bits[ch]);
      REQUIRE(fq_test::bits_of(obs.max_val()[cu]) == st.max_bits[ch]);
      REQUIRE(fq_test::bits_of(s[cu]) == st.scale_bits[ch]);
      REQUIRE(z[cu] == st.zero_point[ch]);
    }
  }
}

template <class Observer>
void dispatch_scheme(const fq_golden::ObserverCase& c, Observer obs) {
  const std::string q = c.qscheme, dtype = c.dtype;
  const bool symmetric = q.find("symmetric") != std::string::npos;
  const fq::QuantRange range{c.quant_min, c.quant_max};
  // The case records the range the observer used; a custom or reduced range is a RuntimeRange
  // (PyTorch's custom-range zero-point rule), the full dtype range an IntRange.
  const bool full_u8 = dtype == "quint8" && !c.has_custom_range && range == fq::UInt8::value();
  if (Observer::kPerChannel) {
    if (symmetric)
      run_observer_case<fq::QScheme<fq::RuntimeRange, fq::Symmetric, fq::PerChannel<0>>>(c, obs,
                                                                                         range);
    else
      run_observer_case<fq::QScheme<fq::RuntimeRange, fq::Affine, fq::PerChannel<0>>>(c, obs,
                                                                                      range);
  } else if (symmetric && full_u8) {
    run_observer_case<fq::QScheme<fq::UInt8, fq::Symmetric>>(c, obs, range);
  } else if (symmetric) {
    run_observer_case<fq::QScheme<fq::RuntimeRange, fq::Symmetric>>(c, obs, range);
  } else {
    run_observer_case<fq::QScheme<fq::RuntimeRange, fq::Affine>>(c, obs, range);
  }
}

}  // namespace

TEST_CASE("golden: torch.ao observers", "[golden][observer]") {
  int checked = 0;
  for (const auto& c : fq_golden::kObserverCases) {
    const std::string kind = c.observer;
    const auto ca = static_cast<float>(c.averaging_constant);
    if (kind == "MinMaxObserver")
      dispatch_scheme(c, fq::MinMaxObserver());
    else if (kind == "MovingAverageMinMaxObserver")
      dispatch_scheme(c, fq::MovingAverageMinMaxObserver(ca));
    else if (kind == "PerChannelMinMaxObserver")
      dispatch_scheme(c, fq::PerChannelMinMaxObserver(0.01f, c.ch_axis));
    else if (kind == "MovingAveragePerChannelMinMaxObserver")
      dispatch_scheme(c, fq::MovingAveragePerChannelMinMaxObserver(ca, c.ch_axis));
    else
      FAIL("unknown observer " << kind);
    ++checked;
  }
  CHECK(checked >= 15);
}
