// SPDX-License-Identifier: MIT
// fakequant against golden vectors produced by PyTorch 1.13 (tests/golden/gen_golden.py):
// per-tensor and per-channel fake quantization (values and masks, bit for bit) and the four
// observers (min/max state and qparams after each batch).
#include <cstdint>
#include <cstring>
#include <string>
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

template <class T, class Bits>
void check_per_tensor(const fq_golden::PerTensorCase& c, fq::KernelPath path) {
  const auto x = decode<T, Bits>(c.x_bits, c.n);
  const auto want = decode<T, Bits>(c.y_bits, c.n);
  std::vector<T> y(x.size());
  fq::Mask m;
  fq::fake_quantize_per_tensor(TensorView<const T>(x.data(), {c.n}), TensorView<T>(y.data(), {c.n}),
                               &m, static_cast<float>(c.scale),
                               static_cast<std::int32_t>(c.zero_point),
                               fq::QuantRange{c.quant_min, c.quant_max}, path);
  for (std::int64_t i = 0; i < c.n; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    INFO(c.name << " element " << i << " x " << x[iu] << " want " << want[iu] << " got " << y[iu]);
    REQUIRE(fq_test::bits_of(y[iu]) == fq_test::bits_of(want[iu]));
    if (c.mask) REQUIRE(m.test_linear(i) == (c.mask[i] != 0));
  }
}

}  // namespace

TEST_CASE("golden: fake_quantize_per_tensor_affine(_cachemask)", "[golden][fake_quant]") {
  REQUIRE(sizeof(fq_golden::kPerTensorCases) > 0);
  int checked = 0;
  for (const auto& c : fq_golden::kPerTensorCases) {
    for (auto path : {fq::KernelPath::kAuto, fq::KernelPath::kScalar}) {
      if (c.dtype_bits == 32)
        check_per_tensor<float, std::uint32_t>(c, path);
      else
        check_per_tensor<double, std::uint64_t>(c, path);
    }
    ++checked;
  }
  CHECK(checked >= 20);
}

TEST_CASE("golden: fake_quantize_per_channel_affine", "[golden][fake_quant]") {
  int checked = 0;
  for (const auto& c : fq_golden::kPerChannelCases) {
    const auto x = decode<float, std::uint32_t>(c.x_bits, c.n);
    const auto want = decode<float, std::uint32_t>(c.y_bits, c.n);
    const auto s = decode<float, std::uint32_t>(c.scale_bits, c.channels);
    std::vector<float> y(x.size());
    fq::Mask m;
    // Contiguous row-major strides for the case's shape.
    std::int64_t strides[4] = {1, 1, 1, 1};
    for (int d = c.rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * c.shape[d + 1];
    const TensorView<const float> xs(x.data(), c.rank, c.shape, strides);
    const TensorView<float> ys(y.data(), c.rank, c.shape, strides);
    for (auto path : {fq::KernelPath::kAuto, fq::KernelPath::kScalar}) {
      if (c.zero_point_is_float) {
        const auto z = decode<float, std::uint32_t>(c.zero_point_float_bits, c.channels);
        fq::fake_quantize_per_channel(xs, ys, &m, s.data(), z.data(), c.channels, c.axis,
                                      fq::QuantRange{c.quant_min, c.quant_max}, path);
      } else {
        fq::fake_quantize_per_channel(xs, ys, &m, s.data(), c.zero_point_int, c.channels, c.axis,
                                      fq::QuantRange{c.quant_min, c.quant_max}, path);
      }
      for (std::int64_t i = 0; i < c.n; ++i) {
        const auto iu = static_cast<std::size_t>(i);
        INFO(c.name << " element " << i << " x " << x[iu] << " want " << want[iu] << " got "
                    << y[iu]);
        REQUIRE(fq_test::bits_of(y[iu]) == fq_test::bits_of(want[iu]));
        if (c.mask) REQUIRE(m.test_linear(i) == (c.mask[i] != 0));
      }
    }
    ++checked;
  }
  CHECK(checked >= 8);
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
