// SPDX-License-Identifier: MIT
// examples/wrap_custom_kernel.cpp: the central use case — your own conv and linear kernels
// (plain loops here; in real code, your optimised ones) trained with QAT on fakequant's tape.
//
// fq::custom_op registers a kernel in one call: a forward that fills the output and a
// backward that adds into the inputs' gradients. fq::ops::fake_quant nodes fake-quantize
// the weights (int8 per output channel) and the activations (uint8 per tensor) around it.
// The program checks the wrapped kernels' gradients against fakequant's own conv2d/linear
// ops on the same quantized graph, then trains a few steps; it exits non-zero on a mismatch.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <fakequant/fakequant.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/optim/sgd.hpp>

namespace user {
// "Your" kernels: valid 3x3 convolution of one-channel images into C channels, and a dense
// layer. Row-major, no padding, stride 1.
void conv3x3(const float* x, const float* w, int n, int c, int h, int wd, float* y) {
  const int oh = h - 2, ow = wd - 2;
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < c; ++o)
      for (int r = 0; r < oh; ++r)
        for (int s = 0; s < ow; ++s) {
          float acc = 0;
          for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q)
              acc += w[o * 9 + p * 3 + q] * x[(i * h + r + p) * wd + s + q];
          y[((i * c + o) * oh + r) * ow + s] = acc;
        }
}
void conv3x3_backward(const float* x, const float* w, const float* dy, int n, int c, int h, int wd,
                      float* dx, float* dw) {
  const int oh = h - 2, ow = wd - 2;
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < c; ++o)
      for (int r = 0; r < oh; ++r)
        for (int s = 0; s < ow; ++s) {
          const float g = dy[((i * c + o) * oh + r) * ow + s];
          for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) {
              if (dw) dw[o * 9 + p * 3 + q] += g * x[(i * h + r + p) * wd + s + q];
              if (dx) dx[(i * h + r + p) * wd + s + q] += g * w[o * 9 + p * 3 + q];
            }
        }
}
void dense(const float* x, const float* w, int n, int in, int out, float* y) {
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      float acc = 0;
      for (int k = 0; k < in; ++k) acc += x[i * in + k] * w[o * in + k];
      y[i * out + o] = acc;
    }
}
void dense_backward(const float* x, const float* w, const float* dy, int n, int in, int out,
                    float* dx, float* dw) {
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o)
      for (int k = 0; k < in; ++k) {
        if (dw) dw[o * in + k] += dy[i * out + o] * x[i * in + k];
        if (dx) dx[i * in + k] += dy[i * out + o] * w[o * in + k];
      }
}
}  // namespace user

namespace {
constexpr int kN = 8, kC = 4, kH = 10, kOut = 3, kFeat = kC * 8 * 8;

fq::Var user_conv(fq::Tape& t, const fq::Var& x, const fq::Var& w) {
  return fq::custom_op(
      t, {x, w}, {kN, kC, kH - 2, kH - 2},
      [&](float* y) { user::conv3x3(x.value(), w.value(), kN, kC, kH, kH, y); },
      [x, w](const float*, const float* dy) {
        user::conv3x3_backward(x.value(), w.value(), dy, kN, kC, kH, kH, x.grad(), w.grad());
      });
}
fq::Var user_dense(fq::Tape& t, const fq::Var& x, const fq::Var& w) {
  return fq::custom_op(
      t, {x, w}, {kN, kOut},
      [&](float* y) { user::dense(x.value(), w.value(), kN, kFeat, kOut, y); },
      [x, w](const float*, const float* dy) {
        user::dense_backward(x.value(), w.value(), dy, kN, kFeat, kOut, x.grad(), w.grad());
      });
}

struct Model {
  fq::Parameter conv_w{{kC, 1, 3, 3}, "conv.weight"}, fc_w{{kOut, kFeat}, "fc.weight"};
  fq::DefaultWeightFakeQuant conv_wq, fc_wq;
  fq::DefaultActFakeQuant in_q, conv_q;

  /// use_user: the wrapped user kernels; else fakequant's ops on the same graph.
  fq::Var forward(fq::Tape& t, const fq::Var& x, bool use_user) {
    const fq::Var xq = fq::ops::fake_quant(t, x, in_q);
    const fq::Var cw = fq::ops::fake_quant(t, conv_w.var(t), conv_wq);
    fq::Var h = use_user ? user_conv(t, xq, cw) : fq::ops::conv2d(t, xq, cw);
    h = fq::ops::fake_quant(t, fq::ops::relu(t, h), conv_q).reshape({kN, kFeat});
    const fq::Var fw = fq::ops::fake_quant(t, fc_w.var(t), fc_wq);
    return use_user ? user_dense(t, h, fw) : fq::ops::linear(t, h, fw);
  }
};
}  // namespace

int main() {
  std::mt19937 rng(5);
  Model m;
  m.conv_w.init_uniform(rng, 9);
  m.fc_w.init_uniform(rng, kFeat);
  std::normal_distribution<float> nd;
  std::vector<float> x(kN * kH * kH);
  std::vector<std::int32_t> labels(kN);
  for (float& v : x) v = nd(rng);
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % kOut);

  // 1. The wrapped kernels give the same loss and weight gradients as fakequant's own ops.
  //    Observers are frozen after a first pass so that both graphs see the same qparams.
  fq::Tape tape;
  m.forward(tape, tape.constant(x.data(), {kN, 1, kH, kH}), true);
  tape.clear();
  for (auto* q : {&m.in_q, &m.conv_q}) q->enable_observer(false);
  for (auto* q : {&m.conv_wq, &m.fc_wq}) q->enable_observer(false);
  std::vector<float> grads[2];
  float losses[2];
  for (int use_user = 0; use_user < 2; ++use_user) {
    m.conv_w.zero_grad();
    m.fc_w.zero_grad();
    fq::Var loss = fq::ops::softmax_cross_entropy(
        tape, m.forward(tape, tape.constant(x.data(), {kN, 1, kH, kH}), use_user == 1),
        labels.data());
    tape.backward(loss);
    losses[use_user] = loss.value()[0];
    grads[use_user] = m.conv_w.grad();
    grads[use_user].insert(grads[use_user].end(), m.fc_w.grad().begin(), m.fc_w.grad().end());
    tape.clear();
  }
  double worst = 0;
  for (std::size_t i = 0; i < grads[0].size(); ++i)
    worst = std::max(worst, double(std::abs(grads[0][i] - grads[1][i])));
  std::printf("loss: fakequant ops %.6f, user kernels %.6f; max |grad difference| %.2e\n",
              losses[0], losses[1], worst);
  if (std::abs(losses[0] - losses[1]) > 1e-5f || worst > 1e-4) {
    std::printf("MISMATCH\n");
    return 1;
  }

  // 2. QAT: a few SGD steps through the wrapped kernels (observers on) fit the batch.
  for (auto* q : {&m.in_q, &m.conv_q}) q->enable_observer(true);
  for (auto* q : {&m.conv_wq, &m.fc_wq}) q->enable_observer(true);
  fq::optim::SgdOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  fq::optim::Sgd opt({m.conv_w.ref(), m.fc_w.ref()}, so);
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    fq::Var loss = fq::ops::softmax_cross_entropy(
        tape, m.forward(tape, tape.constant(x.data(), {kN, 1, kH, kH}), true), labels.data());
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    (step == 0 ? first : last) = loss.value()[0];
    tape.clear();
  }
  std::printf("QAT through the user kernels: loss %.4f -> %.4f\n", first, last);
  return last < 0.5f * first ? 0 : 1;
}
