// SPDX-License-Identifier: MIT
// bm_train_ops: the tape's memory-bound training ops at the Fashion-MNIST demo's shapes
// (batch 128: A = [128, 32, 28, 28] after the first conv, B = [128, 64, 14, 14] after the
// second), forward and forward+backward, each against a memcpy of the bytes it must move,
// timed in the same benchmark (counter x_memcpy = op time / memcpy time; 1.0 is the floor of a
// one-pass op, SetBytesProcessed reports those bytes per second).
//   max_pool2d 2x2     fwd reads x, writes y (x/4) and the arg-max (x/4); bwd reads dy and
//                      the arg-max, writes dx
//   batch_norm         fwd reads x twice (statistics) then x -> y; bwd reads dy and x twice
//   relu               fwd x -> y; bwd reads x and dy, writes dx
//   scale_channels     axis 1 (the QConvBn2d's conv output / fold factor): as relu
//   im2col / col2im    the conv's unfolding: reads x, writes cols (9x x) / reads cols, writes dx
//   gradient zeroing   the zeros of an A-sized tape gradient, written on first use
//   conv block chain   the demo's two conv blocks (conv, batch_norm_relu, 2x2 max pool) fwd+bwd
//                      on the tape, intermediates as in training: each gradient stored by its
//                      first writer or zeroed on first use (tape/grad_state.hpp); x_memcpy of
//                      the activations (each conv's, pool's output and their gradients)
// The forward runs with recording on (as in training); y's gradient reads as zeros in the
// backward, which writes the zeros on that first read (the kernels are branch-free: time does
// not depend on the values). 1 thread. Buffers are filled once outside the timed loop; the tape's
// arena is warmed by the first iterations (no page faults in the timed steady state).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/kernels/col2im.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/pool.hpp>
#include <fakequant/tape/tape.hpp>

namespace {

using Clock = std::chrono::steady_clock;

/// The shapes: 0 = A [128, 32, 28, 28], 1 = B [128, 64, 14, 14].
fq::Shape shape_of(std::int64_t which) {
  return which == 0 ? fq::Shape{128, 32, 28, 28} : fq::Shape{128, 64, 14, 14};
}

std::vector<float> random_floats(std::int64_t n, std::uint32_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (auto& e : v) e = nd(rng);
  return v;
}

/// Median seconds of a memcpy of `bytes` bytes (src and dst touched before).
double memcpy_seconds(std::size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  std::vector<double> t;
  for (int r = 0; r < 15; ++r) {
    const auto t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::ClobberMemory();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + 7, t.end());
  return t[7];
}

/// Runs `body` in the timed loop and sets the counters: bytes/s of `bytes` per iteration and
/// x_memcpy, the loop's time per iteration over a memcpy of bytes/2 (a memcpy of B bytes
/// reads B and writes B).
template <class F>
void run(benchmark::State& st, std::size_t bytes, F&& body) {
  for (int w = 0; w < 3; ++w) body();  // warm the arena: its first steps allocate
  double secs = 0;
  for (auto _ : st) {
    const auto t0 = Clock::now();
    body();
    benchmark::ClobberMemory();
    secs += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) *
                       static_cast<std::int64_t>(bytes));
  st.counters["x_memcpy"] = secs / static_cast<double>(st.iterations()) / memcpy_seconds(bytes / 2);
}

/// A loss whose backward runs every closure recorded since the tape's clear().
void backward_all(fq::Tape& tape) {
  fq::Var loss = tape.variable({}, true);
  loss.value()[0] = 0.0f;
  tape.backward(loss);
}

struct OpCase {
  fq::Shape s;
  std::int64_t n, c, hw;
  std::vector<float> x, dxv;
  fq::Tape tape;
  explicit OpCase(std::int64_t which)
      : s(shape_of(which)),
        n(s[0]),
        c(s[1]),
        hw(s[2] * s[3]),
        x(random_floats(s.numel(), 1)),
        dxv(static_cast<std::size_t>(s.numel()), 0.0f) {}
  std::size_t floats() const { return static_cast<std::size_t>(s.numel()); }
  fq::Var input(bool grad) {
    return grad ? tape.leaf(x.data(), dxv.data(), s) : tape.constant(x.data(), s);
  }
};

// --------------------------------------------------------------------------------- max pool
void BM_MaxPoolFwd(benchmark::State& st) {
  OpCase k(st.range(0));
  const std::size_t b = k.floats() * 4 + k.floats() / 4 * 4 * 3;  // x; y, its grad, arg-max
  run(st, b, [&] {
    k.tape.clear();
    benchmark::DoNotOptimize(fq::ops::max_pool2d(k.tape, k.input(true), 2).value());
  });
}
void BM_MaxPoolFwdBwd(benchmark::State& st) {
  OpCase k(st.range(0));
  const std::size_t b = k.floats() * 4 + k.floats() / 4 * 4 * 3 +     // forward
                        k.floats() / 4 * 4 * 2 + k.floats() * 4 * 2;  // dy, arg-max; dx +=
  run(st, b, [&] {
    k.tape.clear();
    fq::ops::max_pool2d(k.tape, k.input(true), 2);
    backward_all(k.tape);
  });
}

// ------------------------------------------------------------------------------- batch norm
struct BnCase : OpCase {
  std::vector<float> gamma, beta, dgamma, dbeta, rm, rv;
  explicit BnCase(std::int64_t which)
      : OpCase(which),
        gamma(static_cast<std::size_t>(c), 1.5f),
        beta(static_cast<std::size_t>(c), 0.25f),
        dgamma(gamma.size()),
        dbeta(gamma.size()),
        rm(gamma.size(), 0.0f),
        rv(gamma.size(), 1.0f) {}
  fq::Var forward() {
    return fq::ops::batch_norm(tape, input(true), tape.leaf(gamma.data(), dgamma.data(), {c}),
                               tape.leaf(beta.data(), dbeta.data(), {c}), rm.data(), rv.data());
  }
};
void BM_BatchNormFwd(benchmark::State& st) {
  BnCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * 5;  // x read 3 times; y and its zeroed grad written
  run(st, b, [&] {
    k.tape.clear();
    benchmark::DoNotOptimize(k.forward().value());
  });
}
void BM_BatchNormFwdBwd(benchmark::State& st) {
  BnCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * (5 + 6);  // + dy, x twice; dx read and written
  run(st, b, [&] {
    k.tape.clear();
    k.forward();
    backward_all(k.tape);
  });
}

// relu(batch_norm(x)) as two ops and as one (ops::batch_norm_relu), forward and backward.
void BM_BatchNormThenReluFwdBwd(benchmark::State& st) {
  BnCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * (5 + 6);  // batch norm's bytes only: the pair's cost
  run(st, b, [&] {
    k.tape.clear();
    fq::ops::relu(k.tape, k.forward());
    backward_all(k.tape);
  });
}
void BM_BatchNormReluFwdBwd(benchmark::State& st) {
  BnCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * (5 + 6);
  run(st, b, [&] {
    k.tape.clear();
    fq::ops::batch_norm_relu(
        k.tape, k.input(true), k.tape.leaf(k.gamma.data(), k.dgamma.data(), {k.c}),
        k.tape.leaf(k.beta.data(), k.dbeta.data(), {k.c}), k.rm.data(), k.rv.data());
    backward_all(k.tape);
  });
}

// ------------------------------------------------------------------------------------- relu
void BM_ReluFwd(benchmark::State& st) {
  OpCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * 3;  // x; y and its zeroed grad
  run(st, b, [&] {
    k.tape.clear();
    benchmark::DoNotOptimize(fq::ops::relu(k.tape, k.input(true)).value());
  });
}
void BM_ReluFwdBwd(benchmark::State& st) {
  OpCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * (3 + 4);  // + x, dy, dx read and written
  run(st, b, [&] {
    k.tape.clear();
    fq::ops::relu(k.tape, k.input(true));
    backward_all(k.tape);
  });
}

// --------------------------------------------------------------------------- scale_channels
struct ScaleCase : OpCase {
  std::vector<float> f, df;
  explicit ScaleCase(std::int64_t which)
      : OpCase(which), f(static_cast<std::size_t>(c), 0.75f), df(f.size()) {}
  fq::Var forward() {
    return fq::ops::scale_channels(tape, input(true), tape.leaf(f.data(), df.data(), {c}), 1,
                                   /*divide=*/true);
  }
};
void BM_ScaleChannelsFwd(benchmark::State& st) {
  ScaleCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * 3;
  run(st, b, [&] {
    k.tape.clear();
    benchmark::DoNotOptimize(k.forward().value());
  });
}
void BM_ScaleChannelsFwdBwd(benchmark::State& st) {
  ScaleCase k(st.range(0));
  const std::size_t b = k.floats() * 4 * (3 + 4);
  run(st, b, [&] {
    k.tape.clear();
    k.forward();
    backward_all(k.tape);
  });
}

// ---------------------------------------------------------------------------- im2col/col2im
// The demo's convolutions, 3x3, padding 1: conv1 on [128, 1, 28, 28], conv2 on [128, 32, 14, 14].
fq::Conv2dShape conv_of(std::int64_t which) {
  fq::Conv2dShape g;
  g.batch = 128;
  g.in_channels = which == 0 ? 1 : 32;
  g.in_h = g.in_w = which == 0 ? 28 : 14;
  g.out_channels = which == 0 ? 32 : 64;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  return g;
}
void BM_Im2col(benchmark::State& st) {
  const fq::Conv2dShape g = conv_of(st.range(0));
  const std::int64_t p = g.out_h() * g.out_w(), np = g.batch * p, k = g.group_k(),
                     hw = g.in_h * g.in_w;
  const std::vector<float> x = random_floats(g.batch * g.in_channels * hw, 2);
  std::vector<float> cols(static_cast<std::size_t>(k * np));
  const std::size_t b = (x.size() + cols.size()) * 4;
  run(st, b, [&] {
    for (std::int64_t n = 0; n < g.batch; ++n)
      fq::im2col(x.data() + n * g.in_channels * hw, g.in_channels, g, 0.0f, cols.data() + n * p, np,
                 fq::Im2colLayout::kRowPerOffset);
  });
}
void BM_Col2im(benchmark::State& st) {
  const fq::Conv2dShape g = conv_of(st.range(0));
  const std::int64_t np = g.batch * g.out_h() * g.out_w(), k = g.group_k(), hw = g.in_h * g.in_w;
  const std::vector<float> cols = random_floats(k * np, 3);
  std::vector<float> dx(static_cast<std::size_t>(g.batch * g.in_channels * hw));
  const std::size_t b = (cols.size() + 2 * dx.size()) * 4;
  const std::int64_t p = g.out_h() * g.out_w(), chw = g.in_channels * hw;
  run(st, b, [&] {  // image by image, as conv2d's backward (cols here: the batch's, row stride np)
    for (std::int64_t n = 0; n < g.batch; ++n)
      fq::col2im_add(cols.data() + n * p, np, g, dx.data() + n * chw);
  });
}

// ------------------------------------------------------------------------------ conv2d
// The whole op at the demo's two convolutions (no bias, as before batch norm), forward and
// forward+backward with x and w requiring gradients. Counter GFLOPS: the GEMMs' 2·O·K·N·P per
// product (one forward, two backward); x_memcpy as above, of x, w, cols and y.
void conv_bench(benchmark::State& st, bool backward) {
  const fq::Conv2dShape g = conv_of(st.range(0));
  const std::int64_t np = g.batch * g.out_h() * g.out_w(), k = g.group_k();
  const fq::Shape xs{g.batch, g.in_channels, g.in_h, g.in_w},
      ws{g.out_channels, g.in_channels, g.kernel_h, g.kernel_w};
  std::vector<float> x = random_floats(xs.numel(), 4), w = random_floats(ws.numel(), 5);
  std::vector<float> dx(x.size()), dw(w.size());
  fq::Tape tape;
  const auto opt = fq::ops::Conv2dOptions::make(1, 1);
  const std::size_t b =
      (x.size() + w.size() + static_cast<std::size_t>(k * np + g.out_channels * np)) * 4;
  run(st, b, [&] {
    tape.clear();
    fq::Var xv = backward ? tape.leaf(x.data(), dx.data(), xs) : tape.constant(x.data(), xs);
    fq::Var wv = tape.leaf(w.data(), dw.data(), ws);
    fq::Var y = fq::ops::conv2d(tape, xv, wv, fq::Var(), opt);
    benchmark::DoNotOptimize(y.value());
    if (backward) backward_all(tape);
  });
  const double flops = 2.0 * double(g.out_channels) * double(k) * double(np) * (backward ? 3 : 1);
  st.counters["GFLOPS"] =
      benchmark::Counter(flops * double(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
void BM_Conv2dFwd(benchmark::State& st) { conv_bench(st, false); }
void BM_Conv2dFwdBwd(benchmark::State& st) { conv_bench(st, true); }

// ------------------------------------------------------------------------- gradient zeroing
void BM_TapeVariable(benchmark::State& st) {
  fq::Tape tape;
  const fq::Shape s = shape_of(st.range(0));
  const auto n = static_cast<std::size_t>(s.numel());
  run(st, n * 4 * 2, [&] {  // a memset of n floats: as a memcpy of n/2 (n read, n written)
    tape.clear();
    benchmark::DoNotOptimize(tape.variable(s).grad());  // grad(): the zeros' first use
  });
}

// ------------------------------------------------------------------------ conv block chain
// The demo's feature extractor: [conv 3x3 pad 1, batch_norm_relu, max_pool2d 2] twice, from
// the 28x28 images (no gradient) to [128, 64, 7, 7]. Range 0 only (the argument is ignored).
void BM_ConvBlocksFwdBwd(benchmark::State& st) {
  const fq::Conv2dShape g1 = conv_of(0), g2 = conv_of(1);
  const fq::Shape xs{128, 1, 28, 28}, w1s{32, 1, 3, 3}, w2s{64, 32, 3, 3};
  std::vector<float> x = random_floats(xs.numel(), 6), w1 = random_floats(w1s.numel(), 7),
                     w2 = random_floats(w2s.numel(), 8), dw1(w1.size()), dw2(w2.size());
  std::vector<float> gamma(64, 1.0f), beta(64, 0.0f), dgamma(64), dbeta(64), rm(64), rv(64, 1.0f);
  fq::Tape tape;
  const auto opt = fq::ops::Conv2dOptions::make(1, 1);
  auto block = [&](const fq::Var& in, std::vector<float>& w, std::vector<float>& dw,
                   const fq::Shape& ws) {
    const std::int64_t c = ws[0];
    const fq::Var y = fq::ops::conv2d(tape, in, tape.leaf(w.data(), dw.data(), ws), fq::Var(), opt);
    const fq::Var z =
        fq::ops::batch_norm_relu(tape, y, tape.leaf(gamma.data(), dgamma.data(), {c}),
                                 tape.leaf(beta.data(), dbeta.data(), {c}), rm.data(), rv.data());
    return fq::ops::max_pool2d(tape, z, 2);
  };
  const auto a1 = static_cast<std::size_t>(g1.batch * g1.out_channels * g1.out_h() * g1.out_w()),
             a2 = static_cast<std::size_t>(g2.batch * g2.out_channels * g2.out_h() * g2.out_w());
  const std::size_t b = (a1 + a1 / 4 + a2 + a2 / 4) * 4 * 2;  // values and gradients
  run(st, b, [&] {
    tape.clear();
    const fq::Var h = block(tape.constant(x.data(), xs), w1, dw1, w1s);
    benchmark::DoNotOptimize(block(h, w2, dw2, w2s).value());
    backward_all(tape);
  });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("shape")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_MaxPoolFwd)->Apply(shapes);
BENCHMARK(BM_MaxPoolFwdBwd)->Apply(shapes);
BENCHMARK(BM_BatchNormFwd)->Apply(shapes);
BENCHMARK(BM_BatchNormFwdBwd)->Apply(shapes);
BENCHMARK(BM_BatchNormThenReluFwdBwd)->Apply(shapes);
BENCHMARK(BM_BatchNormReluFwdBwd)->Apply(shapes);
BENCHMARK(BM_ReluFwd)->Apply(shapes);
BENCHMARK(BM_ReluFwdBwd)->Apply(shapes);
BENCHMARK(BM_ScaleChannelsFwd)->Apply(shapes);
BENCHMARK(BM_ScaleChannelsFwdBwd)->Apply(shapes);
BENCHMARK(BM_Im2col)->Apply(shapes);
BENCHMARK(BM_Col2im)->Apply(shapes);
BENCHMARK(BM_TapeVariable)->Apply(shapes);
BENCHMARK(BM_Conv2dFwd)->Apply(shapes);
BENCHMARK(BM_Conv2dFwdBwd)->Apply(shapes);
BENCHMARK(BM_ConvBlocksFwdBwd)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
