// SPDX-License-Identifier: MIT
// examples/fashion_mnist_qat.cpp: the README's main job. Trains a small CNN on Fashion-MNIST
// in FP32 with fakequant's tape, then compares on the 10,000 test images what post-training
// quantization (PTQ) and quantization-aware training (QAT) give at W8A8 and W4A8.
//
//   fashion_mnist_qat [--epochs N] [--qat-epochs N] [--batch N] [--lr X] [--qat-lr X]
//                     [--threads N] [--train-subset N] [--test-subset N] [--seed N]
//                     [--data DIR] [--json PATH] [--svg PATH] [--check]
//                     [--checkpoint PATH] [--resume PATH] [--stop-after N]
//                     [--onnx PATH] [--onnx-io PREFIX] [--distributed]
//
// The network: input fake-quant -> ConvBn(1->C1, 3x3) ReLU -> max-pool 2 -> ConvBn(C1->C2, 3x3)
// ReLU -> max-pool 2 -> Linear(C2*7*7 -> H) ReLU -> Linear(H -> 10). Weights: per-channel
// symmetric int8 (or int4) with min-max observers; activations: per-tensor affine uint8 with
// moving-average observers (fq::DefaultWeightFakeQuant and fq::DefaultActFakeQuant); batch
// norm folded into the conv weights (QConvBn2d).
//
// PTQ: the FP32 weights, observers calibrated on training batches, batch norm folded with its
// running statistics, then evaluated with fake quantization. QAT: from the PTQ state, a few
// epochs of training with fake quantization on; an fq::QatSchedule freezes the batch-norm
// statistics half way and the observers at three quarters (as PyTorch's QAT tutorial does).
// INT8: the QAT W8A8 model converted (fq::convert_sequential) to a true integer model on
// fakequant's int8 kernels, evaluated on the same test images; then the QAT model itself is run
// with its layers in integer arithmetic (use_integer_arithmetic) and its logits compared bit for
// bit with the deployed model's.
// --onnx PATH exports the deployed integer model as ONNX in QDQ form (fq::export_onnx,
// convert/onnx.hpp) for ONNX Runtime; --onnx-io PREFIX writes what a runtime's outputs are
// compared with (tests/onnx/demo_vs_ort.sh): PREFIX.images.f32 (the test images, normalised,
// [n, 1, 28, 28]), PREFIX.int8-logits.f32 (the integer model's logits [n, 10]) and
// PREFIX.logit-steps.f32 (the logits' quantization step s_x·s_w[o] of each class [10]), float32.
// --check exits non-zero unless every accuracy is far above chance, the integer model's
// accuracy is within 0.05 points of its fake-quant simulation's, and every logit is
// bit-identical to the QAT model's in integer arithmetic (the CI's short run).
// --checkpoint PATH saves the whole training state at the end of every epoch of every phase
// (fq::save_checkpoint: networks, optimizer, LR and QAT schedules, the shuffling engine, the
// results so far); --resume PATH continues from such a file, skipping the finished phases (same
// flags; the phase in progress refuses other epochs, batch size or learning rates), and ends bit
// for bit as the uninterrupted run (docs/training.md, Checkpoints).
// --stop-after N exits after N epochs (of all phases) of this process, as an interruption.
// --distributed (under `mpirun -np N`, a build with MPI: FQ_DEMO_MPI) trains data-parallel
// (fakequant/distributed/, docs/distributed.md): each global batch of --batch images is split
// into N slices of batch/N, one per rank; observers and batch norm see the global batch
// (fq::SyncBatchStats), gradients are averaged (fq::DataParallel), rank 0's networks are
// broadcast and every rank checked to hold the same ones (fq::broadcast_state), so every rank
// trains the model one process trains with the same flags. Calibration and evaluation run
// whole on every rank (same data, same result); rank 0 prints, and each epoch's line adds the
// time spent in collectives per step. Checkpoints are refused with it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/convert/int8_model.hpp>
#include <fakequant/convert/onnx.hpp>
#include <fakequant/fakequant.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "fashion_mnist_data.hpp"
#include "fashion_mnist_net.hpp"

#if FQ_DEMO_MPI
#include <fakequant/distributed/data_parallel.hpp>
#include <fakequant/distributed/mpi.hpp>
#endif

namespace {

constexpr const char* kProgram = "fashion_mnist_qat";

// ---------------------------------------------------------------------------------- options
struct Options {
  int epochs = 6, qat_epochs = 1, batch = 64, threads = 2, seed = 1, stop_after = 0;
  long train_subset = 0, test_subset = 0;  // 0: all
  double lr = 2e-3, qat_lr = 1e-4;
  std::string data = "/usr/share/datasets/fashion-mnist", json, svg, checkpoint, resume, onnx,
              onnx_io;
  bool check = false, distributed = false;
};

Options parse(int argc, char** argv) {
  Options o;
  fmnist::Flags f(kProgram);
  f.add("--epochs", o.epochs).add("--qat-epochs", o.qat_epochs).add("--batch", o.batch);
  f.add("--lr", o.lr).add("--qat-lr", o.qat_lr).add("--threads", o.threads);
  f.add("--train-subset", o.train_subset).add("--test-subset", o.test_subset);
  f.add("--seed", o.seed).add("--data", o.data).add("--json", o.json).add("--svg", o.svg);
  f.add("--checkpoint", o.checkpoint).add("--resume", o.resume).add("--stop-after", o.stop_after);
  f.add("--onnx", o.onnx).add("--onnx-io", o.onnx_io);
  f.add_switch("--check", o.check);
  f.add_switch("--distributed", o.distributed);
  f.parse(argc, argv);
  if (o.epochs < 1 || o.qat_epochs < 1 || o.batch < 2 || o.threads < 1 || o.lr <= 0 ||
      o.qat_lr <= 0)
    f.usage("epochs, qat-epochs and threads must be >= 1, batch >= 2, learning rates > 0");
  return o;
}

// ------------------------------------------------------------------------------------ data
using fmnist::Clock;
using fmnist::Dataset;
using fmnist::seconds_since;
using fmnist::set_threads;

// ------------------------------------------------------------------------- data parallel
#if FQ_DEMO_MPI
/// The communicator of --distributed, timing every collective it runs (for the epoch lines).
class TimedCommunicator final : public fq::Communicator {
 public:
  explicit TimedCommunicator(fq::Communicator& c) : c_(c) {}
  int rank() const noexcept override { return c_.rank(); }
  int size() const noexcept override { return c_.size(); }
  void all_reduce(float* d, std::size_t n, fq::ReduceOp op) override {
    timed([&] { c_.all_reduce(d, n, op); });
  }
  void all_reduce(double* d, std::size_t n, fq::ReduceOp op) override {
    timed([&] { c_.all_reduce(d, n, op); });
  }
  void all_reduce(std::int64_t* d, std::size_t n, fq::ReduceOp op) override {
    timed([&] { c_.all_reduce(d, n, op); });
  }
  void broadcast(void* d, std::size_t bytes, int root) override {
    timed([&] { c_.broadcast(d, bytes, root); });
  }
  [[noreturn]] void abort(int code, const char* what) noexcept override {
    c_.abort(code, what);
    std::abort();  // not reached (a virtual call's [[noreturn]] is not seen)
  }
  double seconds = 0;  ///< in collectives since the last reset
  long calls = 0;

 private:
  template <class F>
  void timed(F&& f) {
    const auto t0 = Clock::now();
    f();
    seconds += seconds_since(t0);
    ++calls;
  }
  fq::Communicator& c_;
};
TimedCommunicator* g_comm = nullptr;  // set by main under --distributed
#endif

// ----------------------------------------------------------------------------------- model
using fmnist::Net;

using W8 = fq::DefaultWeightFakeQuant;
using W4 = fq::FakeQuantize<fq::Int4WeightPerChannelSymmetric, fq::PerChannelMinMaxObserver>;

// ----------------------------------------------------------------------------- checkpoints
struct Result {
  double ptq = 0, qat = 0, int8 = -1, int8_ips = 0;
  long int8_logits = 0, int8_logits_differ = -1;
  template <class V>
  void visit_state(V& v) {
    v.kind("result");
    v.state("ptq", ptq);
    v.state("qat", qat);
    v.state("int8", int8);
    v.state("int8_ips", int8_ips);
    std::int64_t n[2] = {int8_logits, int8_logits_differ};  // long is not int64_t everywhere
    v.state_span("int8_logits", n, 2, fq::StateCheck{});
    int8_logits = long(n[0]);
    int8_logits_differ = long(n[1]);
  }
};

/// Where the demo is, the first object of its checkpoints: the phase being trained (0 FP32,
/// 1 QAT W8A8, 2 QAT W4A8), the epochs and steps done in it, the results of the phases before.
struct DemoState {
  std::int32_t phase = 0;
  fq::TrainingProgress progress;
  double acc_fp32 = 0, fp32_ips = 0;
  Result w8, w4;
  template <class V>
  void visit_state(V& v) {
    v.kind("fashion_mnist_qat");
    v.state("phase", phase, fq::state_in(0, 2));
    v.child("progress", progress);
    v.state("acc_fp32", acc_fp32);
    v.state("fp32_ips", fp32_ips);
    v.child("w8", w8);
    v.child("w4", w4);
  }
};

/// The order of the training images, shuffled again at each epoch (so it is state too).
struct ShuffleOrder {
  std::vector<long>& order;
  template <class V>
  void visit_state(V& v) {
    v.kind("shuffle_order");
    const std::size_t n = order.size();
    v.state_vector("order", order, fq::state_in(0, double(n) - 1), fq::StateSize{n, n, nullptr});
  }
};

struct Checkpoints {
  std::string save_path, resume_path;
  int resume_phase = -1;  // the phase of the checkpoint to resume from; -1: none (or done)
  int epochs_run = 0;     // by this process (--stop-after)
  DemoState state;
};

// -------------------------------------------------------------------------------- training
template <class N>
double evaluate(N& net, const Dataset& d, fq::Tape& tape) {
  net.train(false);
  fq::NoGradGuard no_grad(tape);
  long correct = 0;
  constexpr long kBatch = 500;
  for (long s = 0; s < d.n; s += kBatch) {
    const long b = std::min(kBatch, d.n - s);
    tape.clear();
    fq::Var x = tape.constant(d.images.data() + s * 784, {b, 1, 28, 28});
    const auto logits = net.forward(tape, x).mat();
    for (long i = 0; i < b; ++i) {
      Eigen::Index k;
      logits.row(i).maxCoeff(&k);
      correct += (k == d.labels[std::size_t(s + i)]);
    }
  }
  tape.clear();
  net.train(true);
  return double(correct) / double(d.n);
}

/// Trains `epochs` epochs of phase `phase`; prints one line per epoch. Returns the final test
/// accuracy. With checkpoints, saves (ck.state, the engine, the optimizer, the LR schedule,
/// saved...) at each epoch's end, or first restores them if the checkpoint to resume is of
/// this phase.
template <class N, class... Saved>
double train(const char* name, N& net, const Dataset& train_set, const Dataset& test_set,
             const Options& o, int epochs, double lr, fq::QatSchedule* sched, std::mt19937& rng,
             Checkpoints& ck, int phase, Saved&... saved) {
  fq::Tape tape;
  fq::optim::AdamOptions ao;
  ao.lr = lr;
  fq::optim::Adam opt(net.parameters(), ao);
  const long steps_per_epoch = train_set.n / o.batch;
  fq::optim::CosineAnnealingLR lr_sched(lr, steps_per_epoch * epochs);
  std::vector<long> order(std::size_t(train_set.n));
  std::iota(order.begin(), order.end(), 0L);
  fq::EngineState rng_state(rng);
  ShuffleOrder order_state{order};
  int first_epoch = 0;
  if (ck.resume_phase == phase) {
    fq::load_checkpoint(ck.resume_path, ck.state, rng_state, order_state, opt, lr_sched, saved...);
    first_epoch = int(ck.state.progress.epoch);
    ck.resume_phase = -1;
    std::printf("%-9s resumed after epoch %d/%d from %s\n", name, first_epoch, epochs,
                ck.resume_path.c_str());
  } else {
    ck.state.phase = phase;
    ck.state.progress = fq::TrainingProgress{};
  }
  // Data parallel: this rank's slice [first, first + local) of each global batch.
  long first = 0, local = o.batch;
#if FQ_DEMO_MPI
  std::unique_ptr<fq::DataParallel> dp;
  if (g_comm) {
    local = o.batch / g_comm->size();
    first = local * g_comm->rank();
    fq::broadcast_state(*g_comm, net, opt);  // rank 0's network; the same network everywhere
    dp = std::make_unique<fq::DataParallel>(*g_comm, net.parameters());
  }
  double step_secs = 0, comm_secs = 0, grad_secs = 0;
#endif
  std::vector<float> xb(static_cast<std::size_t>(local) * 784);
  std::vector<std::int32_t> yb(static_cast<std::size_t>(local));
  const auto start = Clock::now();
  long step = long(ck.state.progress.step);
  double acc = first_epoch == epochs ? evaluate(net, test_set, tape) : 0;
  for (int e = first_epoch; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    const auto t0 = Clock::now();
    double loss_sum = 0;
    long correct = 0;
    for (long s = 0; s < steps_per_epoch; ++s, ++step) {
      if (sched) sched->advance();
      for (long i = 0; i < local; ++i) {
        const long k = order[std::size_t(s * o.batch + first + i)];
        std::copy_n(train_set.images.data() + k * 784, 784, xb.data() + i * 784);
        yb[std::size_t(i)] = train_set.labels[std::size_t(k)];
      }
      tape.clear();
#if FQ_DEMO_MPI
      const auto step_t0 = Clock::now();
      const double comm_t0 = g_comm ? g_comm->seconds : 0;
      std::unique_ptr<fq::SyncBatchStats> sync;
      if (g_comm) sync = std::make_unique<fq::SyncBatchStats>(*g_comm);
#endif
      fq::Var logits = net.forward(tape, tape.constant(xb.data(), {local, 1, 28, 28}));
      fq::Var loss = fq::ops::softmax_cross_entropy(tape, logits, yb.data());
      tape.backward(loss);
#if FQ_DEMO_MPI
      if (dp) {
        const auto grad_t0 = Clock::now();
        dp->all_reduce_gradients();
        grad_secs += seconds_since(grad_t0);
      }
      sync.reset();
      if (g_comm) {
        step_secs += seconds_since(step_t0);
        comm_secs += g_comm->seconds - comm_t0;
      }
#endif
      opt.set_lr(lr_sched.lr_at(step));
      opt.step();
      opt.zero_grad();
      loss_sum += loss.value()[0];
      const auto lm = logits.mat();
      for (long i = 0; i < local; ++i) {
        Eigen::Index k;
        lm.row(i).maxCoeff(&k);
        correct += (k == yb[std::size_t(i)]);
      }
    }
    const double secs = seconds_since(t0);
#if FQ_DEMO_MPI
    if (g_comm) {  // the epoch's loss and accuracy over every rank's slices
      double sums[2] = {loss_sum / double(g_comm->size()), double(correct)};
      g_comm->all_reduce(sums, 2, fq::ReduceOp::kSum);
      loss_sum = sums[0];
      correct = long(sums[1]);
    }
#endif
    acc = evaluate(net, test_set, tape);
    std::printf(
        "%-9s epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  %6.0f img/s  %6.1f s\n", name,
        e + 1, epochs, loss_sum / double(steps_per_epoch),
        double(correct) / double(steps_per_epoch * o.batch), acc,
        double(steps_per_epoch * o.batch) / secs, seconds_since(start));
#if FQ_DEMO_MPI
    if (g_comm) {
      std::printf(
          "%-9s   %d ranks: %.2f ms per step, %.2f ms (%.1f%%) in collectives, of which the "
          "gradient all-reduce (%zu floats) %.2f ms\n",
          "", g_comm->size(), 1e3 * step_secs / double(steps_per_epoch),
          1e3 * comm_secs / double(steps_per_epoch), 100 * comm_secs / step_secs, dp->bucket_size(),
          1e3 * grad_secs / double(steps_per_epoch));
      step_secs = comm_secs = grad_secs = 0;
    }
#endif
    std::fflush(stdout);
    ck.state.progress.epoch = e + 1;
    ck.state.progress.step = step;
    if (!ck.save_path.empty())
      fq::save_checkpoint(ck.save_path, ck.state, rng_state, order_state, opt, lr_sched, saved...);
    if (++ck.epochs_run == o.stop_after) {
      std::printf("stopped after %d epochs (--stop-after)\n", o.stop_after);
      std::exit(0);
    }
  }
  return acc;
}

/// PTQ: calibrate the observers on `batches` training batches (no training), then freeze them.
template <class N>
void calibrate(N& net, const Dataset& d, long batches, long batch) {
  fq::Tape tape;
  fq::NoGradGuard no_grad(tape);
  net.train(false);  // batch norm folded with its running statistics
  net.set_quant(/*observe=*/true, /*fake_quant=*/false);
  for (long b = 0; b < batches && (b + 1) * batch <= d.n; ++b) {
    tape.clear();
    net.forward(tape, tape.constant(d.images.data() + b * batch * 784, {batch, 1, 28, 28}));
  }
  net.set_quant(/*observe=*/false, /*fake_quant=*/true);
  net.train(true);
}

/// Accuracy and images/s of the integer model on the test set (batches of 500).
/// The deployed model: uint8 activations, int8 weights, int32 accumulators on fakequant's int8
/// kernels, float logits.
std::pair<double, double> evaluate_int8(const fq::Int8Model& model, const Dataset& d) {
  long correct = 0;
  std::vector<float> logits(500 * 10);
  const auto t0 = Clock::now();
  for (long s = 0; s < d.n; s += 500) {
    const long b = std::min(500L, d.n - s);
    model.run(d.images.data() + s * 784, b, logits.data());
    for (long i = 0; i < b; ++i)
      correct += std::max_element(logits.begin() + i * 10, logits.begin() + i * 10 + 10) -
                     (logits.begin() + i * 10) ==
                 d.labels[std::size_t(s + i)];
  }
  return {double(correct) / double(d.n), double(d.n) / seconds_since(t0)};
}

/// Runs the QAT model with each layer in integer arithmetic (use_integer_arithmetic: each layer
/// runs its own cached Int8Conv2d or Int8Linear, the deployed layers, inside the float graph)
/// and the deployed model on the test set; returns how many logits differ in any bit, and the
/// accuracy.
template <class N>
std::pair<long, double> compare_with_deployed(N& net, const fq::Int8Model& deployed,
                                              const Dataset& d) {
  net.c1.use_integer_arithmetic(fq::act_qparams(net.in.quantizer()));
  net.c2.use_integer_arithmetic(fq::act_qparams(net.c1.output_quantizer()));
  net.fc1.use_integer_arithmetic(fq::act_qparams(net.c2.output_quantizer()));
  net.fc2.use_integer_arithmetic(fq::act_qparams(net.fc1.output_quantizer()));
  fq::Tape tape;
  fq::NoGradGuard no_grad(tape);
  long differ = 0, correct = 0;
  std::vector<float> deployed_logits(500 * 10);
  for (long s = 0; s < d.n; s += 500) {
    const long b = std::min(500L, d.n - s);
    tape.clear();
    const auto logits =
        net.forward(tape, tape.constant(d.images.data() + s * 784, {b, 1, 28, 28})).mat();
    deployed.run(d.images.data() + s * 784, b, deployed_logits.data());
    for (long i = 0; i < b; ++i) {
      Eigen::Index k;
      logits.row(i).maxCoeff(&k);
      correct += k == d.labels[std::size_t(s + i)];
      for (long c = 0; c < 10; ++c) {
        const float a = logits(i, c), e = deployed_logits[std::size_t(i * 10 + c)];
        differ += std::memcmp(&a, &e, sizeof a) != 0;
      }
    }
  }
  net.c1.use_float_arithmetic();
  net.c2.use_float_arithmetic();
  net.fc1.use_float_arithmetic();
  net.fc2.use_float_arithmetic();
  return {differ, double(correct) / double(d.n)};
}

template <class T>
void write_f32(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
  if (!f) {
    std::fprintf(stderr, "%s: cannot write %s\n", kProgram, path.c_str());
    std::exit(2);
  }
}

/// --onnx-io: the test images, the integer model's logits and the logits' quantization steps
/// (the last layer's s_x·s_w[o]: logits are s_x·s_w[o]·acc + b[o]), for comparing a runtime.
void write_onnx_io(const fq::Int8Model& model, const Dataset& d, const std::string& prefix) {
  std::vector<float> logits(std::size_t(d.n) * 10);
  model.run(d.images.data(), d.n, logits.data());
  const fq::Int8LayerParams& p = std::get<fq::Int8Linear>(model.steps().back()).params();
  std::vector<float> steps;
  for (float ws : p.weight_scale) steps.push_back(p.in.scale * ws);
  write_f32(prefix + ".images.f32", d.images);
  write_f32(prefix + ".int8-logits.f32", logits);
  write_f32(prefix + ".logit-steps.f32", steps);
}

/// PTQ then QAT of phase `phase` (1: W8A8, 2: W4A8); the results go to ck.state.
template <class WQ>
void ptq_and_qat(const char* tag, Net<W8>& fp32, const Dataset& train_set, const Dataset& test_set,
                 const Options& o, std::mt19937& rng, Checkpoints& ck, int phase) {
  Result& r = phase == 1 ? ck.state.w8 : ck.state.w4;
  Net<WQ> net(rng);
  if (ck.resume_phase > phase) return;  // finished before the checkpoint, which holds r
  if (ck.resume_phase != phase) {       // else the checkpoint holds the PTQ and QAT state
    net.copy_from(fp32);
    calibrate(net, train_set, 32, o.batch);
    fq::Tape tape;
    r.ptq = evaluate(net, test_set, tape);
    std::printf("PTQ %-5s test acc %.4f\n", tag, r.ptq);
  }
  // QAT from the PTQ state: fake quantization from the first step, observers on until 3/4 of
  // the steps, batch-norm statistics frozen from half way.
  const long steps = train_set.n / o.batch * o.qat_epochs;
  fq::QatScheduleConfig cfg;
  cfg.fake_quant_start = 0;
  cfg.bn_freeze = steps / 2;
  cfg.observer_freeze = steps * 3 / 4;
  fq::QatSchedule sched(cfg);
  net.for_each_quantizer([&](auto& q) { sched.add(q); });
  sched.add_bn(net.c1);
  sched.add_bn(net.c2);
  r.qat = train((std::string("QAT ") + tag).c_str(), net, train_set, test_set, o, o.qat_epochs,
                o.qat_lr, &sched, rng, ck, phase, fp32, net, sched);
  if constexpr (std::is_same<WQ, W8>::value) {
    net.train(false);
    const fq::Int8Model deployed = net.convert();
    std::tie(r.int8, r.int8_ips) = evaluate_int8(deployed, test_set);
    std::printf("INT8 deployed  test acc %.4f  %6.0f img/s\n", r.int8, r.int8_ips);
    if (!o.onnx.empty()) {
      fq::export_onnx(deployed, o.onnx);
      std::printf("INT8 deployed model exported as ONNX (QDQ) to %s\n", o.onnx.c_str());
    }
    if (!o.onnx_io.empty()) write_onnx_io(deployed, test_set, o.onnx_io);
    double int_acc;
    std::tie(r.int8_logits_differ, int_acc) = compare_with_deployed(net, deployed, test_set);
    r.int8_logits = test_set.n * 10;
    std::printf(
        "QAT W8A8 in integer arithmetic  test acc %.4f; logits bit-identical to INT8 deployed: "
        "%ld of %ld\n",
        int_acc, r.int8_logits - r.int8_logits_differ, r.int8_logits);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
#if FQ_DEMO_MPI
  std::unique_ptr<fq::MpiCommunicator> mpi;
  std::unique_ptr<TimedCommunicator> timed;
  if (o.distributed) {
    mpi = std::make_unique<fq::MpiCommunicator>(&argc, &argv);
    timed = std::make_unique<TimedCommunicator>(*mpi);
    g_comm = timed.get();
    if (o.batch % g_comm->size() != 0 || !o.checkpoint.empty() || !o.resume.empty()) {
      if (g_comm->rank() == 0)
        std::fprintf(stderr,
                     "%s: --distributed needs --batch divisible by the %d ranks, and no "
                     "--checkpoint or --resume\n",
                     kProgram, g_comm->size());
      return 2;
    }
    if (g_comm->rank() != 0 && !std::freopen("/dev/null", "w", stdout)) return 2;  // rank 0 prints
    std::printf("data parallel: %d ranks (MPI), %d images per rank per step\n", g_comm->size(),
                o.batch / g_comm->size());
  }
#else
  if (o.distributed) {
    std::fprintf(stderr,
                 "%s: --distributed needs a build with MPI (FQ_DEMO_MPI; CMake finds "
                 "MPI: apt-get install libopenmpi-dev)\n",
                 kProgram);
    return 2;
  }
#endif
  set_threads(o.threads);
  const auto start = Clock::now();
  const Dataset train_set = fmnist::load(kProgram, o.data, "train", o.train_subset);
  const Dataset test_set = fmnist::load(kProgram, o.data, "t10k", o.test_subset);
  std::printf("Fashion-MNIST: %ld training, %ld test images; batch %d, %d thread(s), seed %d\n",
              train_set.n, test_set.n, o.batch, o.threads, o.seed);
  if (train_set.n < o.batch) {
    std::fprintf(stderr, "%s: the training subset is smaller than one batch\n", kProgram);
    return 2;
  }

  Checkpoints ck;
  ck.save_path = o.checkpoint;
  ck.resume_path = o.resume;
  if (!o.resume.empty()) {  // the phase first: the objects to load into depend on it
    try {
      ck.resume_phase = fq::read_checkpoint_value<std::int32_t>(o.resume, "0.phase");
    } catch (const fq::Error& e) {
      std::fprintf(stderr, "%s: cannot resume: %s\n", kProgram, e.what());
      return 2;
    }
  }
  std::mt19937 rng(std::uint32_t(o.seed));
  Net<W8> fp32(rng);
  fp32.set_quant(false, false);
  try {  // a checkpoint of other flags or another program is refused here, with its reason
    if (ck.resume_phase <= 0) {
      ck.state.acc_fp32 =
          train("FP32", fp32, train_set, test_set, o, o.epochs, o.lr, nullptr, rng, ck, 0, fp32);
      // Inference speed on 1 thread, as the integer model runs.
      set_threads(1);
      fq::Tape tape;
      const auto t0 = Clock::now();
      evaluate(fp32, test_set, tape);
      ck.state.fp32_ips = double(test_set.n) / seconds_since(t0);
      set_threads(o.threads);
    }
    ptq_and_qat<W8>("W8A8", fp32, train_set, test_set, o, rng, ck, 1);
    ptq_and_qat<W4>("W4A8", fp32, train_set, test_set, o, rng, ck, 2);
  } catch (const fq::Error& e) {
#if FQ_DEMO_MPI
    // One rank's error ends every rank (the others would wait in their next collective).
    if (g_comm)
      g_comm->abort(2, fq::detail::msg(kProgram, " rank ", g_comm->rank(), ": ", e.what()).c_str());
#endif
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return 2;
  }
  const Result w8 = ck.state.w8, w4 = ck.state.w4;
  const double acc_fp32 = ck.state.acc_fp32, fp32_ips = ck.state.fp32_ips;

  const std::vector<std::pair<std::string, double>> rows = {
      {"FP32", acc_fp32},   {"PTQ W8A8", w8.ptq}, {"QAT W8A8", w8.qat},
      {"PTQ W4A8", w4.ptq}, {"QAT W4A8", w4.qat}, {"INT8", w8.int8}};
  std::printf(
      "\n| model    | test accuracy | vs FP32 (points) "
      "|\n|----------|---------------|------------------|\n");
  for (const auto& r : rows)
    std::printf("| %-8s | %12.2f%% | %+16.2f |\n", r.first.c_str(), r.second * 100,
                (r.second - acc_fp32) * 100);
  std::printf(
      "INT8 = the QAT W8A8 model converted to an integer model on the int8 kernels.\n"
      "Inference on 1 thread: FP32 (tape, no gradients) %.0f img/s, INT8 %.0f img/s (%.2fx)\n",
      fp32_ips, w8.int8_ips, w8.int8_ips / fp32_ips);
  std::printf("total %.1f s\n", seconds_since(start));
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    f << "{\"fp32\": " << acc_fp32 << ", \"ptq_w8a8\": " << w8.ptq << ", \"qat_w8a8\": " << w8.qat
      << ", \"ptq_w4a8\": " << w4.ptq << ", \"qat_w4a8\": " << w4.qat
      << ", \"int8_deployed\": " << w8.int8
      << ", \"int8_logits_bit_identical\": " << (w8.int8_logits_differ == 0 ? "true" : "false")
      << "}\n";
  }
  if (!o.svg.empty()) fmnist::write_svg(o.svg, rows);
  // The bar: the deployed model within 0.05 points of the QAT model's accuracy, and
  // bit for bit equal to the QAT model evaluated in integer arithmetic.
  if (o.check && std::abs(w8.int8 - w8.qat) > 0.0005 + 1e-9) {
    std::fprintf(stderr,
                 "fashion_mnist_qat: the integer model (%.4f) disagrees with QAT W8A8 (%.4f)\n",
                 w8.int8, w8.qat);
    return 1;
  }
  if (o.check && w8.int8_logits_differ != 0) {
    std::fprintf(stderr,
                 "fashion_mnist_qat: %ld of %ld logits of the deployed model differ from the QAT "
                 "model in integer arithmetic\n",
                 w8.int8_logits_differ, w8.int8_logits);
    return 1;
  }
  if (o.check)
    for (const auto& r : rows)
      if (r.second < 0.5) {
        std::fprintf(stderr, "fashion_mnist_qat: %s accuracy %.3f is not far above chance (0.1)\n",
                     r.first.c_str(), r.second);
        return 1;
      }
  return 0;
}
