// SPDX-License-Identifier: MIT
// examples/vit_fashion_mnist_qat.cpp: a small Vision Transformer trained on Fashion-MNIST in
// FP32 with fakequant's tape, then quantized as language and vision models are today: every
// matmul input fake-quantized (weights and activations, including attention's QKᵀ and
// attention·V), LayerNorm, softmax and GELU in float. Reports on the 10,000 test images:
//   FP32; PTQ and QAT at W8A8 (per-channel int8 weights, per-tensor uint8 activations);
//   PTQ and QAT at W4A8 (int4 weights in groups of 32, dynamic per-token int8 activations);
//   PTQ and QAT at W4A4 (int4 g32 weights, per-tensor uint4 activations); QAT W4A4 with
//   knowledge distillation from the FP32 model; mixed precision (W8A8 patch embedding and
//   head, W4A4 blocks); and the QAT W8A8 model with its linear layers on the int8 kernels.
//
//   vit_fashion_mnist_qat [--epochs N] [--qat-epochs N] [--batch N] [--lr X] [--qat-lr X]
//                         [--qat4-lr X] [--kd-temperature T] [--kd-alpha A] [--threads N]
//                         [--train-subset N] [--test-subset N] [--seed N] [--data DIR]
//                         [--json PATH] [--svg PATH] [--check]
//
// The network (fq::QVisionTransformer): 7×7 patches (16 tokens and a class token), width 64,
// 4 heads, 4 pre-norm encoder blocks with MLP width 128, a LayerNorm and a linear head.
// PTQ: the FP32 weights; min-max observers (the static uint8 and uint4 activations) calibrated
// on 32 training batches; the group-wise and per-token quantizers need no calibration (their
// scales come from each tensor). QAT: from the PTQ state, AdamW with a cosine schedule; the
// observers freeze at three quarters. At 4 bits, sixteen levels leave no room for a range set
// by the extremes, so the W4A4 QAT models learn theirs: LSQ+ activation quantizers (learned
// scale and zero point, fq::LearnableFakeQuant) start from the PTQ model's calibrated ranges,
// and train at --qat4-lr (the 8-bit models need only a touch: --qat-lr).
// Distillation: loss = α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − α)·CE(student),
// the teacher being the FP32 model run without gradients.
// --check (the CI's short run) exits non-zero unless every accuracy is far above chance and the
// int8-kernel model's accuracy is within 0.1 points of its fake-quant model's (within two
// images on a test subset of fewer than 2,000).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <fakequant/fakequant.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/transformer.hpp>
#include <fakequant/ops/distill.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "fashion_mnist_data.hpp"

namespace {

using fmnist::Clock;
using fmnist::Dataset;
using fmnist::seconds_since;
constexpr const char* kProgram = "vit_fashion_mnist_qat";

// ---------------------------------------------------------------------------------- options
struct Options {
  int epochs = 10, qat_epochs = 2, batch = 64, threads = 2, seed = 1;
  long train_subset = 0, test_subset = 0;  // 0: all
  double lr = 2e-3, qat_lr = 2e-4, qat4_lr = 1e-3, kd_temperature = 4.0, kd_alpha = 0.7;
  std::string data = "/usr/share/datasets/fashion-mnist", json, svg;
  bool check = false;
};

fmnist::Flags flags(Options& o) {
  fmnist::Flags f(kProgram);
  f.add("--epochs", o.epochs).add("--qat-epochs", o.qat_epochs).add("--batch", o.batch);
  f.add("--lr", o.lr).add("--qat-lr", o.qat_lr).add("--qat4-lr", o.qat4_lr);
  f.add("--kd-temperature", o.kd_temperature);
  f.add("--kd-alpha", o.kd_alpha).add("--threads", o.threads).add("--train-subset", o.train_subset);
  f.add("--test-subset", o.test_subset).add("--seed", o.seed).add("--data", o.data);
  f.add("--json", o.json).add("--svg", o.svg).add_switch("--check", o.check);
  return f;
}

Options parse(int argc, char** argv) {
  Options o;
  const fmnist::Flags f = flags(o);
  f.parse(argc, argv);
  if (o.epochs < 1 || o.qat_epochs < 1 || o.batch < 2 || o.threads < 1 || !(o.lr > 0) ||
      !(o.qat_lr > 0) || !(o.qat4_lr > 0) || !(o.kd_temperature > 0) ||
      !(o.kd_alpha >= 0 && o.kd_alpha <= 1))
    f.usage(
        "epochs, qat-epochs and threads must be >= 1, batch >= 2, learning rates and the "
        "temperature > 0, alpha in [0, 1]");
  return o;
}

// ----------------------------------------------------------------------------------- model
fq::VitOptions vit_options(const Options& o) {
  fq::VitOptions v;
  v.image = 28;
  v.patch = 7;
  v.classes = 10;
  v.depth = 4;
  v.block.dim = 64;
  v.block.heads = 4;
  v.block.mlp_hidden = 128;
  v.seed = std::uint64_t(o.seed);
  return v;
}

template <class E, class B = E, class H = E>
using Vit = fq::QVisionTransformer<E, B, H>;
using FloatVit = Vit<fq::FloatRecipe>;

// The patch embedding has K = 7·7 = 49 input features, which groups of 32 do not divide (TorchAO
// would leave such a layer unquantized): its int4 weights take groups of 32 and a short last
// group of 17, each with its own scale.
using Int4WeightGroup32ShortTail = fq::GroupFakeQuantizer<
    fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32, -1, fq::GroupTail::kShortLast>>>;
using EmbedW4A8 = fq::QuantRecipe<Int4WeightGroup32ShortTail, fq::Int8ActPerTokenDynamic>;
// W4A4: int4 g32 weights and per-tensor uint4 activations (16 levels) at every matmul input —
// the hard case, where PTQ loses accuracy and QAT and distillation win it back. PTQ calibrates
// static ranges (moving-average min-max observers); QAT learns them (LSQ+, learned scale and
// zero point), starting from PTQ's.
using Uint4Act = fq::FakeQuantize<fq::Uint4ActPerTensorAffine, fq::MovingAverageMinMaxObserver>;
using Uint4LsqAct = fq::LearnableFakeQuant<fq::TorchLsq, fq::UInt4>;
template <class Act>
using W4A4Recipe = fq::QuantRecipe<fq::Int4WeightGroup32Symmetric, Act>;
template <class Act>
using EmbedW4A4 = fq::QuantRecipe<Int4WeightGroup32ShortTail, Act>;
using VitW8A8 = Vit<fq::W8A8Recipe>;
using VitW4A8 = Vit<EmbedW4A8, fq::W4A8G32Recipe>;
using VitW4A4 = Vit<EmbedW4A4<Uint4Act>, W4A4Recipe<Uint4Act>>;
using VitW4A4Lsq = Vit<EmbedW4A4<Uint4LsqAct>, W4A4Recipe<Uint4LsqAct>>;
using VitMixed = Vit<fq::W8A8Recipe, W4A4Recipe<Uint4Act>, fq::W8A8Recipe>;
using VitMixedLsq = Vit<fq::W8A8Recipe, W4A4Recipe<Uint4LsqAct>, fq::W8A8Recipe>;

/// Copies the FP32 model's parameters into a quantized model of the same architecture (the
/// learnable quantizers' own parameters, "lsq.*", are not the FP32 model's and are skipped).
template <class M>
void copy_parameters(FloatVit& from, M& to) {
  const auto src = from.parameters();
  std::vector<fq::optim::ParamRef> dst;
  for (const auto& p : to.parameters())
    if (std::strncmp(p.name, "lsq.", 4) != 0) dst.push_back(p);
  if (src.size() != dst.size()) {
    std::fprintf(stderr, "%s: parameter lists differ (%zu vs %zu)\n", kProgram, src.size(),
                 dst.size());
    std::exit(1);
  }
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i].size != dst[i].size || std::strcmp(src[i].name, dst[i].name) != 0) {
      std::fprintf(stderr, "%s: parameter %zu differs (%s vs %s)\n", kProgram, i, src[i].name,
                   dst[i].name);
      std::exit(1);
    }
    std::copy_n(src[i].value, src[i].size, dst[i].value);
  }
}

// -------------------------------------------------------------------------------- training
template <class M>
double evaluate(M& net, const Dataset& d) {
  // Evaluation observes nothing: the observers' switches are restored afterwards.
  std::vector<bool> observing;
  net.for_each_quantizer([&](auto& q) {
    if constexpr (fq::detail::has_switches<std::decay_t<decltype(q)>>::value) {
      observing.push_back(q.observer_enabled());
      q.enable_observer(false);
    }
  });
  fq::Tape tape;
  net.train(false);
  fq::NoGradGuard no_grad(tape);
  long correct = 0;
  constexpr long kBatch = 250;
  for (long s = 0; s < d.n; s += kBatch) {
    const long b = std::min(kBatch, d.n - s);
    tape.clear();
    const auto logits =
        net.forward(tape, tape.constant(d.images.data() + s * 784, {b, 1, 28, 28})).mat();
    for (long i = 0; i < b; ++i) {
      Eigen::Index k;
      logits.row(i).maxCoeff(&k);
      correct += (k == d.labels[std::size_t(s + i)]);
    }
  }
  net.train(true);
  std::size_t i = 0;
  net.for_each_quantizer([&](auto& q) {
    if constexpr (fq::detail::has_switches<std::decay_t<decltype(q)>>::value)
      q.enable_observer(observing[i++]);
  });
  return double(correct) / double(d.n);
}

/// Test accuracy and images/s on one thread.
template <class M>
std::pair<double, double> timed_evaluate(M& net, const Dataset& d, int threads) {
  fmnist::set_threads(1);
  const auto t0 = Clock::now();
  const double acc = evaluate(net, d);
  const double ips = double(d.n) / seconds_since(t0);
  fmnist::set_threads(threads);
  return {acc, ips};
}

/// Trains `epochs` epochs (with a distillation teacher when `teacher` is set); prints one line
/// per epoch and returns the final test accuracy.
template <class M>
double train(const char* name, M& net, const Dataset& train_set, const Dataset& test_set,
             const Options& o, int epochs, double lr, fq::QatSchedule* sched, std::mt19937& rng,
             FloatVit* teacher = nullptr) {
  fq::Tape tape;
  fq::optim::AdamWOptions ao;
  ao.lr = lr;
  ao.weight_decay = 0.05;
  fq::optim::AdamW opt(net.parameters(), ao);
  const long steps_per_epoch = train_set.n / o.batch;
  const long total = steps_per_epoch * epochs;
  fq::optim::LinearWarmup warm;
  warm.steps = sched ? 0 : std::min(total / 10, 500L);  // FP32 from scratch warms up
  fq::optim::CosineAnnealingLR lr_sched(lr, std::max(total - warm.steps, 1L), 0.0, warm);
  std::vector<long> order(std::size_t(train_set.n));
  std::iota(order.begin(), order.end(), 0L);
  std::vector<float> xb(std::size_t(o.batch) * 784);
  std::vector<std::int32_t> yb(std::size_t(o.batch));
  const auto start = Clock::now();
  long step = 0;
  double acc = 0;
  for (int e = 0; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    const auto t0 = Clock::now();
    double loss_sum = 0;
    long correct = 0;
    for (long s = 0; s < steps_per_epoch; ++s, ++step) {
      if (sched) sched->advance();
      for (long i = 0; i < o.batch; ++i) {
        const long k = order[std::size_t(s * o.batch + i)];
        std::copy_n(train_set.images.data() + k * 784, 784, xb.data() + i * 784);
        yb[std::size_t(i)] = train_set.labels[std::size_t(k)];
      }
      tape.clear();
      const fq::Var x = tape.constant(xb.data(), {o.batch, 1, 28, 28});
      const fq::Var logits = net.forward(tape, x);
      fq::Var loss;
      if (teacher) {
        fq::Var t_logits;
        {
          fq::NoGradGuard no_grad(tape);
          t_logits = teacher->forward(tape, x);
        }
        loss = fq::ops::distillation_loss(tape, logits, t_logits, yb.data(),
                                          float(o.kd_temperature), float(o.kd_alpha));
      } else {
        loss = fq::ops::softmax_cross_entropy(tape, logits, yb.data());
      }
      tape.backward(loss);
      opt.set_lr(lr_sched.lr_at(step));
      opt.step();
      opt.zero_grad();
      loss_sum += loss.value()[0];
      const auto lm = logits.mat();
      for (long i = 0; i < o.batch; ++i) {
        Eigen::Index k;
        lm.row(i).maxCoeff(&k);
        correct += (k == yb[std::size_t(i)]);
      }
    }
    const double secs = seconds_since(t0);
    acc = evaluate(net, test_set);
    std::printf(
        "%-10s epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  %6.0f img/s  %6.1f s\n", name,
        e + 1, epochs, loss_sum / double(steps_per_epoch),
        double(correct) / double(steps_per_epoch * o.batch), acc,
        double(steps_per_epoch * o.batch) / secs, seconds_since(start));
    std::fflush(stdout);
  }
  return acc;
}

/// PTQ calibration: observers on and fake quantization off for `batches` training batches,
/// then observers off and fake quantization on. Quantizers without switches (dynamic group and
/// per-token ones) are untouched: their scales come from each tensor.
template <class M>
void calibrate(M& net, const Dataset& d, long batches, long batch) {
  fq::Tape tape;
  fq::NoGradGuard no_grad(tape);
  net.train(false);
  fq::set_quant_switches(net, /*observe=*/true, /*fake_quant=*/false);
  for (long b = 0; b < batches && (b + 1) * batch <= d.n; ++b) {
    tape.clear();
    net.forward(tape, tape.constant(d.images.data() + b * batch * 784, {batch, 1, 28, 28}));
  }
  fq::set_quant_switches(net, /*observe=*/false, /*fake_quant=*/true);
  net.train(true);
}

/// PTQ: the FP32 weights, calibrated; returns the test accuracy.
template <class M>
double ptq(const char* tag, M& net, FloatVit& fp32, const Dataset& train_set,
           const Dataset& test_set, const Options& o) {
  copy_parameters(fp32, net);
  calibrate(net, train_set, 32, o.batch);
  const double acc = evaluate(net, test_set);
  std::printf("PTQ %-10s test acc %.4f\n", tag, acc);
  return acc;
}

/// The LSQ quantizers of `to` start from the ranges the static quantizers at the same places of
/// `from` (the same architecture, calibrated) hold: scale and zero point copied, observer off
/// for good (it would reset them from each batch's min/max).
template <class P, class Q>
void start_lsq_from(P& from, Q& to) {
  std::vector<std::pair<float, float>> qparams;  // (scale, zero point), or (0, 0): not static
  from.for_each_quantizer([&](auto& q) {
    using T = std::decay_t<decltype(q)>;
    if constexpr (std::is_same<T, Uint4Act>::value)
      qparams.emplace_back(q.quantizer().scale()[0], float(q.quantizer().zero_point()[0]));
    else
      qparams.emplace_back(0.0f, 0.0f);
  });
  std::size_t i = 0;
  to.for_each_quantizer([&](auto& q) {
    if constexpr (std::is_same<std::decay_t<decltype(q)>, Uint4LsqAct>::value) {
      const auto [scale, zero_point] = qparams.at(i);
      if (!(scale > 0)) {
        std::fprintf(stderr, "%s: quantizer %zu has no calibrated range to start from\n", kProgram,
                     i);
        std::exit(1);
      }
      q.quantizer().set_scale(scale);
      q.quantizer().set_zero_point(zero_point);
      q.enable_observer(false);
    }
    ++i;
  });
  if (i != qparams.size()) {
    std::fprintf(stderr, "%s: the models' quantizers differ (%zu vs %zu)\n", kProgram,
                 qparams.size(), i);
    std::exit(1);
  }
}

/// QAT of `net` from the calibrated PTQ model `from` (`net` itself, or an LSQ twin of it), with
/// the FP32 teacher when `distill` is set; returns the final test accuracy.
template <class P, class Q>
double qat_from(const char* tag, P& from, Q& net, FloatVit& fp32, const Dataset& train_set,
                const Dataset& test_set, const Options& o, double lr, std::mt19937& rng,
                bool distill = false) {
  if constexpr (!std::is_same<P, Q>::value) {
    copy_parameters(fp32, net);
    calibrate(net, train_set, 32, o.batch);  // its static quantizers, as `from`'s
    start_lsq_from(from, net);
  }
  // The static observers observe again during QAT until three quarters of the steps.
  const long steps = train_set.n / o.batch * o.qat_epochs;
  fq::QatScheduleConfig cfg;
  cfg.fake_quant_start = 0;
  cfg.observer_freeze = steps * 3 / 4;
  fq::QatSchedule sched(cfg);
  net.for_each_quantizer([&](auto& q) {
    using T = std::decay_t<decltype(q)>;
    if constexpr (fq::is_qat_switchable_v<T> && !std::is_same<T, Uint4LsqAct>::value) sched.add(q);
  });
  return train((std::string(distill ? "KD " : "QAT ") + tag).c_str(), net, train_set, test_set, o,
               o.qat_epochs, lr, &sched, rng, distill ? &fp32 : nullptr);
}

struct Result {
  double ptq = 0, qat = 0;
};

/// PTQ, then QAT from the PTQ state, of one model.
template <class M>
Result ptq_and_qat(const char* tag, M& net, FloatVit& fp32, const Dataset& train_set,
                   const Dataset& test_set, const Options& o, std::mt19937& rng) {
  Result r;
  r.ptq = ptq(tag, net, fp32, train_set, test_set, o);
  r.qat = qat_from(tag, net, net, fp32, train_set, test_set, o, o.qat_lr, rng);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  fmnist::set_threads(o.threads);
  const auto start = Clock::now();
  const Dataset train_set = fmnist::load(kProgram, o.data, "train", o.train_subset);
  const Dataset test_set = fmnist::load(kProgram, o.data, "t10k", o.test_subset);
  std::printf("Fashion-MNIST: %ld training, %ld test images; batch %d, %d thread(s), seed %d\n",
              train_set.n, test_set.n, o.batch, o.threads, o.seed);
  if (train_set.n < o.batch) {
    std::fprintf(stderr, "%s: the training subset is smaller than one batch\n", kProgram);
    return 2;
  }
  const fq::VitOptions vo = vit_options(o);

  std::mt19937 rng(std::uint32_t(o.seed));
  FloatVit fp32(vo, rng);
  const double acc_fp32 = train("FP32", fp32, train_set, test_set, o, o.epochs, o.lr, nullptr, rng);

  VitW8A8 w8a8(vo, rng);
  const Result r8 = ptq_and_qat("W8A8", w8a8, fp32, train_set, test_set, o, rng);
  // The QAT W8A8 model deployed: its linear layers on the int8 kernels (uint8 inputs quantized
  // inside each layer, int8 weights, int32 accumulators), the rest in float.
  const auto [fp32_acc_1t, fp32_ips] = timed_evaluate(fp32, test_set, o.threads);
  (void)fp32_acc_1t;
  fq::use_int8_kernels(w8a8);
  const auto [int8_acc, int8_ips] = timed_evaluate(w8a8, test_set, o.threads);
  fq::use_float_arithmetic(w8a8);
  std::printf(
      "INT8 kernels W8A8  test acc %.4f (fake quant %.4f)  %6.0f img/s, FP32 %6.0f img/s "
      "(1 thread: %.2fx)\n",
      int8_acc, r8.qat, int8_ips, fp32_ips, int8_ips / fp32_ips);
  VitW4A8 w4a8(vo, rng);
  const Result r48 = ptq_and_qat("W4A8 g32", w4a8, fp32, train_set, test_set, o, rng);
  // W4A4 and mixed: the PTQ models stay as calibrated; their LSQ twins train from them.
  VitW4A4 w4a4(vo, rng);
  Result r44, kd, rm;
  r44.ptq = ptq("W4A4", w4a4, fp32, train_set, test_set, o);
  VitW4A4Lsq w4a4_lsq(vo, rng);
  r44.qat = qat_from("W4A4", w4a4, w4a4_lsq, fp32, train_set, test_set, o, o.qat4_lr, rng);
  VitW4A4Lsq w4a4_kd(vo, rng);
  kd.qat = qat_from("W4A4", w4a4, w4a4_kd, fp32, train_set, test_set, o, o.qat4_lr, rng, true);
  VitMixed mixed(vo, rng);
  rm.ptq = ptq("mixed", mixed, fp32, train_set, test_set, o);
  VitMixedLsq mixed_lsq(vo, rng);
  rm.qat = qat_from("mixed", mixed, mixed_lsq, fp32, train_set, test_set, o, o.qat4_lr, rng);

  const std::vector<std::pair<std::string, double>> rows = {
      {"FP32", acc_fp32},        {"PTQ W8A8", r8.ptq},      {"QAT W8A8", r8.qat},
      {"PTQ W4A8 g32", r48.ptq}, {"QAT W4A8 g32", r48.qat}, {"PTQ W4A4", r44.ptq},
      {"QAT W4A4", r44.qat},     {"QAT W4A4 + KD", kd.qat}, {"mixed (QAT)", rm.qat},
      {"INT8 kernels", int8_acc}};
  std::printf(
      "\n| model         | test accuracy | vs FP32 (points) |\n"
      "|---------------|---------------|------------------|\n");
  for (const auto& r : rows)
    std::printf("| %-13s | %12.2f%% | %+16.2f |\n", r.first.c_str(), r.second * 100,
                (r.second - acc_fp32) * 100);
  std::printf(
      "W8A8: int8 per-channel weights, uint8 per-tensor activations. W4A8 g32: int4 weights in "
      "groups of 32, int8 per-token activations. W4A4: int4 g32 weights, uint4 per-tensor "
      "activations (calibrated ranges for PTQ, learned LSQ+ ranges for QAT). mixed: W8A8 patch "
      "embedding and head, W4A4 blocks. INT8 kernels: the QAT "
      "W8A8 model with its linear layers on the int8 kernels.\n");
  std::printf("total %.1f s\n", seconds_since(start));
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    f << "{\"fp32\": " << acc_fp32 << ", \"ptq_w8a8\": " << r8.ptq << ", \"qat_w8a8\": " << r8.qat
      << ", \"ptq_w4a8_g32\": " << r48.ptq << ", \"qat_w4a8_g32\": " << r48.qat
      << ", \"ptq_w4a4\": " << r44.ptq << ", \"qat_w4a4\": " << r44.qat
      << ", \"qat_w4a4_kd\": " << kd.qat << ", \"mixed\": " << rm.qat
      << ", \"int8_kernels_w8a8\": " << int8_acc << ", \"int8_images_per_s\": " << int8_ips
      << ", \"fp32_images_per_s\": " << fp32_ips << "}\n";
  }
  if (!o.svg.empty()) fmnist::write_svg(o.svg, rows, 0.5);
  // The bar: the int8-kernel model within 0.1 points of its fake-quant model (rounding
  // midpoints flip a few images either way). On a test subset of fewer than 2,000 images one
  // image is 0.1 points or more, so two images are allowed there.
  const double int8_tol = std::max(0.001, 2.0 / double(test_set.n));
  if (o.check && std::abs(int8_acc - r8.qat) > int8_tol + 1e-9) {
    std::fprintf(stderr, "%s: the int8-kernel model (%.4f) disagrees with QAT W8A8 (%.4f)\n",
                 kProgram, int8_acc, r8.qat);
    return 1;
  }
  if (o.check)
    for (const auto& r : rows)
      if (r.second < 0.5) {
        std::fprintf(stderr, "%s: %s accuracy %.3f is not far above chance (0.1)\n", kProgram,
                     r.first.c_str(), r.second);
        return 1;
      }
  return 0;
}
