// SPDX-License-Identifier: MIT
// bm_int8_model: the Fashion-MNIST demo's INT8 inference (examples/fashion_mnist_qat.cpp), self
// contained: the demo's W8A8 network (input quantizer -> ConvBn 1->32 ReLU -> max pool 2 ->
// ConvBn 32->64 ReLU -> max pool 2 -> flatten -> Linear 3136->128 ReLU -> Linear 128->10, float
// logits) with random weights, calibrated on a few random batches, converted to an fq::Int8Model
// (fq::convert_sequential) and run on a batch of 500 images on one thread, as the demo's
// evaluate_int8. Reports images/s (items_per_second) for the whole model and each step alone.
#include <cstdint>
#include <random>
#include <variant>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/convert/int8_model.hpp>
#include <fakequant/fakequant.hpp>
#include <fakequant/int8/model.hpp>

#include "../examples/fashion_mnist_net.hpp"

namespace {

constexpr std::int64_t kBatch = 500;

using Net = fmnist::Net<fq::DefaultWeightFakeQuant>;  // the demo's network, W8A8

// Fashion-MNIST-like images: pixels in [0, 1], about half of them 0 (background).
std::vector<float> images(std::int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n * 784));
  for (float& v : x) {
    const float r = u(rng);
    v = r < 0.5f ? 0.0f : u(rng);
  }
  return x;
}

struct Fixture {
  Fixture() : rng(1), net(rng), x(images(kBatch, rng)), model(make_model()) {}
  fq::Int8Model make_model() {
    fq::Tape tape;
    fq::NoGradGuard ng(tape);
    for (int b = 0; b < 4; ++b) {  // calibrate the observers (batch norm on batch statistics)
      tape.clear();
      const std::vector<float> xb = images(32, rng);
      net.forward(tape, tape.constant(xb.data(), {32, 1, 28, 28}));
    }
    net.train(false);
    net.set_quant(false, true);
    return net.convert();
  }
  std::mt19937 rng;
  Net net;
  std::vector<float> x;
  fq::Int8Model model;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// arg: Int8Model::set_run_chunk_bytes (0: the default, 256 KiB; 64 MiB, the former default:
// the whole batch of 500 at once).
void BM_Int8Model(benchmark::State& state) {
  Fixture& f = fixture();
  f.model.set_run_chunk_bytes(state.range(0) > 0 ? state.range(0) : fq::detail::kRunChunkBytes);
  std::vector<float> logits(static_cast<std::size_t>(kBatch * 10));
  for (auto _ : state) {
    f.model.run(f.x.data(), kBatch, logits.data());
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Int8Model)->Arg(0)->Arg(1 << 26)->Unit(benchmark::kMillisecond);

// Each step alone on its input (the levels the previous steps give), arg = the step index;
// -1: the input quantization.
void BM_Int8Step(benchmark::State& state) {
  Fixture& f = fixture();
  const fq::Int8Model& m = f.model;
  const auto& steps = m.steps();
  const std::int64_t idx = state.range(0);
  // The levels before each step, computed once with the steps themselves.
  std::vector<std::vector<std::uint8_t>> act(1);
  act[0].resize(static_cast<std::size_t>(kBatch * m.input_numel()));
  const auto q = m.input_qparams();
  fq::quantize_per_tensor(fq::TensorView<const float>(f.x.data(), {kBatch, m.input_numel()}),
                          fq::TensorView<std::uint8_t>(act[0].data(), {kBatch, m.input_numel()}),
                          q.scale, q.zero_point, m.input_range());
  std::vector<float> logits(static_cast<std::size_t>(kBatch * 10));
  auto run_step = [&](std::size_t i, const std::uint8_t* in, std::uint8_t* out) {
    const fq::Int8Step& s = steps[i];
    if (const auto* c = std::get_if<fq::Int8Conv2d>(&s)) {
      c->run(in, kBatch, out);
    } else if (const auto* l = std::get_if<fq::Int8Linear>(&s)) {
      if (l->params().float_out)
        l->run(in, kBatch, logits.data());
      else
        l->run(in, kBatch, out);
    } else if (const auto* p = std::get_if<fq::Int8MaxPool2d>(&s)) {
      p->run(in, kBatch, out);
    } else {
      std::copy_n(in, kBatch * std::get<fq::Int8Flatten>(s).input_shape().numel(), out);
    }
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::int64_t numel = fq::detail::step_output_shape(steps[i]).numel();
    act.emplace_back(static_cast<std::size_t>(kBatch * numel));
    run_step(i, act[i].data(), act[i + 1].data());
  }
  for (auto _ : state) {
    if (idx < 0)
      fq::quantize_per_tensor(
          fq::TensorView<const float>(f.x.data(), {kBatch, m.input_numel()}),
          fq::TensorView<std::uint8_t>(act[0].data(), {kBatch, m.input_numel()}), q.scale,
          q.zero_point, m.input_range());
    else
      run_step(static_cast<std::size_t>(idx), act[static_cast<std::size_t>(idx)].data(),
               act[static_cast<std::size_t>(idx) + 1].data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(idx < 0 ? "quantize"
                         : fq::detail::step_name(steps[static_cast<std::size_t>(idx)]));
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Int8Step)->DenseRange(-1, 6)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
