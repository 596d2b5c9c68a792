// SPDX-License-Identifier: MIT
// Tests of FakeQuantize: observer and fake-quant switches, as PyTorch's module.
#include <algorithm>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/scheme/presets.hpp>

#include "catch.hpp"

using fq::TensorView;

TEST_CASE("FakeQuantize observes, then fake-quantizes with fresh qparams",
          "[observer][fake_quant]") {
  fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver> fqm;
  std::vector<float> x{-0.3f, 0.1f, 0.9f, 1.7f}, y(4);
  fq::Mask m;
  fqm.forward(TensorView<const float>(x.data(), {4}), TensorView<float>(y.data(), {4}), &m);
  CHECK(double(fqm.quantizer().scale()[0]) == 0.007843137718737125);  // P10
  CHECK(fqm.quantizer().zero_point()[0] == 38);
  for (int i = 0; i < 4; ++i)
    CHECK(std::abs(y[static_cast<std::size_t>(i)] - x[static_cast<std::size_t>(i)]) <= 0.0040f);
  CHECK(m.count() == 4);
  // Observer off: qparams frozen even for a wider batch, which is now clipped.
  fqm.disable_observer();
  std::vector<float> w{-5.0f, 5.0f}, yw(2);
  fqm.forward(TensorView<const float>(w.data(), {2}), TensorView<float>(yw.data(), {2}), &m);
  CHECK(fqm.quantizer().zero_point()[0] == 38);
  CHECK(yw[1] == (255 - 38) * fqm.quantizer().scale()[0]);
  CHECK(m.count() == 0);
  // Fake-quant off: identity with an all-ones mask.
  fqm.disable_fake_quant();
  fqm.forward(TensorView<const float>(w.data(), {2}), TensorView<float>(yw.data(), {2}), &m);
  CHECK(yw == w);
  CHECK(m.count() == 2);
  std::vector<float> dy{3.0f, 4.0f}, dx(2);
  fqm.backward(TensorView<const float>(dy.data(), {2}), m, TensorView<float>(dx.data(), {2}));
  CHECK(dx == dy);
}

TEST_CASE("per-channel FakeQuantize sizes itself from the first batch", "[observer][fake_quant]") {
  fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric> fqm(fq::Int8::value());
  Eigen::MatrixXf w = Eigen::MatrixXf::Random(5, 11), y(5, 11);
  fqm.forward(w, y);
  REQUIRE(fqm.quantizer().channels() == 5);
  for (int c = 0; c < 5; ++c) {
    const float absmax = w.row(c).cwiseAbs().maxCoeff();
    CHECK(fqm.quantizer().scale()[static_cast<std::size_t>(c)] == absmax / 127.5f);
  }
  CHECK(((y - w).cwiseAbs().array() <= w.cwiseAbs().maxCoeff() / 255.0f * 1.0001f).all());
}

TEST_CASE("FakeQuantize: an empty tensor is a no-op, per tensor and per channel",
          "[observer][fake_quant]") {
  std::vector<float> buf(8, 1.0f), out(8, 7.0f);
  fq::Mask m;
  SECTION("per channel, before and after the channel count is known") {
    fq::FakeQuantize<fq::Int8WeightPerChannelSymmetric> fqm(fq::Int8::value());
    // [0, 4] and [3, 0]: empty with 0 or 3 channels on axis 0.
    fqm.forward(TensorView<const float>(buf.data(), {0, 4}), TensorView<float>(out.data(), {0, 4}),
                &m);
    CHECK(m.numel() == 0);
    fqm.forward(TensorView<const float>(buf.data(), {3, 0}), TensorView<float>(out.data(), {3, 0}),
                &m);
    CHECK(fqm.observer().min_val().empty());  // nothing observed, nothing sized
    CHECK(fqm.quantizer().channels() == 1);
    CHECK_FALSE(fqm.calibrated());
    std::vector<float> w{-1.0f, 2.0f, 0.5f, -4.0f}, y(4);
    fqm.forward(TensorView<const float>(w.data(), {2, 2}), TensorView<float>(y.data(), {2, 2}));
    REQUIRE(fqm.quantizer().channels() == 2);
    const std::vector<float> scales = fqm.quantizer().scale();
    fqm.forward(TensorView<const float>(buf.data(), {5, 0}), TensorView<float>(out.data(), {5, 0}),
                &m);
    CHECK(m.numel() == 0);
    CHECK(fqm.quantizer().scale() == scales);
    CHECK(fqm.observer().min_val().size() == 2);
    CHECK(out == std::vector<float>(8, 7.0f));  // nothing written
    // The output must still have the input's shape.
    CHECK_THROWS_AS(fqm.forward(TensorView<const float>(buf.data(), {5, 0}),
                                TensorView<float>(out.data(), {0, 5})),
                    fq::Error);
  }
  SECTION("per tensor, observer and fake quantization off") {
    fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver> fqm;
    fqm.forward(TensorView<const float>(buf.data(), {0}), TensorView<float>(out.data(), {0}), &m);
    CHECK(m.numel() == 0);
    CHECK_FALSE(fqm.observer().has_data());
    fqm.disable_fake_quant();
    fqm.forward(TensorView<const float>(buf.data(), {2, 0}), TensorView<float>(out.data(), {2, 0}),
                &m);
    CHECK(m.numel() == 0);
  }
}

TEST_CASE("FakeQuantize off: ops::fake_quant is the identity, without a node", "[observer][ops]") {
  std::vector<float> x = {-1.5f, 0.25f, 3.0f, 7.75f}, dx(4, 0.5f);
  for (int mode = 0; mode < 3; ++mode) {  // 0: both off, 1: observer on, 2: fake quant on
    CAPTURE(mode);
    fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver> q;
    q.enable_observer(mode == 1);
    q.enable_fake_quant(mode == 2);
    if (mode == 2) {  // qparams from an observation: scale 9.25 / 255
      fq::Tape t0;
      q.enable_observer(true);
      fq::ops::fake_quant(t0, t0.constant(x.data(), {4}), q);
      q.enable_observer(false);
    }
    CHECK(q.is_identity() == (mode == 0));
    fq::Tape t;
    const fq::Var xv = t.leaf(x.data(), dx.data(), {4});
    const fq::Var y = fq::ops::fake_quant(t, xv, q);
    CHECK((y.value() == x.data()) == (mode == 0));  // the identity returns x itself
    CHECK(t.node_count() == (mode == 0 ? 0u : 1u));
    if (mode == 1) CHECK(q.calibrated());        // the observer ran
    if (mode == 2) CHECK(y.value()[1] != x[1]);  // 0.25 is not on the grid of step 9.25/255
    std::fill(dx.begin(), dx.end(), 0.5f);
    t.backward(fq::ops::mean(t, y));
    for (float g : dx) CHECK(g == 0.5f + 0.25f);  // dy = 1/4 passes (every x is in range)
  }
}
