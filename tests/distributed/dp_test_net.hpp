// SPDX-License-Identifier: MIT
// tests/distributed/dp_test_net.hpp: the small conv+BN+linear QAT network of the data-parallel
// equivalence tests and its training loop, shared by the thread test (distributed.test.cpp)
// and the MPI one (mpi_equivalence.cpp).
//
// Network: input fake-quant (moving-average min-max) -> QConvBn2d(1->4, 3x3, pad 1) ReLU
// (per-channel min-max weights, moving-average activations) -> max-pool 2 -> flatten ->
// QLinear(64->8) ReLU with an LSQ output quantizer (learnable scale and zero point, initialised
// from the observed batch range) -> QLinear(8->3), float logits.
// Data: a global batch of B images 8x8 per step, generated from (seed, step, index) alone, so
// every rank can take its slice [rank*B/N, (rank+1)*B/N) of the same global batch.
// Schedule: observers on until step 14, BN frozen from step 10, LSQ learning from step 3.
#ifndef FQ_TESTS_DISTRIBUTED_DP_TEST_NET_HPP_
#define FQ_TESTS_DISTRIBUTED_DP_TEST_NET_HPP_

#include <algorithm>  // copy_n, max
#include <cmath>      // abs
#include <cstddef>    // size_t, ptrdiff_t
#include <cstdint>    // int32_t, int64_t
#include <memory>     // unique_ptr, make_unique
#include <random>     // mt19937, normal_distribution
#include <utility>    // swap
#include <vector>     // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/distributed/data_parallel.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

namespace fq_dist_test {

using Lsq = fq::LearnableFakeQuant<fq::TorchLsq>;

struct TinyNet {
  explicit TinyNet(unsigned seed, std::int64_t hidden = 8) : TinyNet(seed, hidden, rng_for(seed)) {}

  fq::Var forward(fq::Tape& t, const fq::Var& x) {
    fq::Var h = pool.forward(t, conv.forward(t, in.forward(t, x)));
    h = fc1.forward(t, flatten.forward(t, h));
    return fc2.forward(t, h);
  }
  std::vector<fq::optim::ParamRef> parameters() { return fq::parameters_of(conv, fc1, fc2); }
  template <class V>
  void visit_state(V& v) {
    v.kind("tiny_net");
    v.child("in", in);
    v.child("conv", conv);
    v.child("fc1", fc1);
    v.child("fc2", fc2);
  }
  void register_with(fq::QatSchedule& s) {
    fq::for_each_quantizer_of([&s](auto& q) { s.add(q); }, in, conv, fc1, fc2);
    s.add_bn(conv);
  }

  fq::ActQuant<> in;
  fq::QConvBn2d<> conv;
  fq::MaxPool2d pool{2};
  fq::Flatten flatten;
  fq::QLinear<fq::DefaultWeightFakeQuant, Lsq> fc1;
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> fc2;

 private:
  static std::mt19937 rng_for(unsigned seed) { return std::mt19937(seed); }
  TinyNet(unsigned, std::int64_t hidden, std::mt19937 rng)
      : conv(1, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(4 * 4 * 4, hidden, rng, fq::Activation::kReLU),
        fc2(hidden, 3, rng) {}
};

inline fq::QatScheduleConfig tiny_schedule() {
  fq::QatScheduleConfig c;
  c.observer_freeze = 14;
  c.bn_freeze = 10;
  c.learning_start = 3;
  return c;
}

/// The global batch of step `step`: images [b, 1, 8, 8] and labels (file comment).
inline void global_batch(int step, int b, std::vector<float>& x, std::vector<std::int32_t>& y) {
  x.resize(static_cast<std::size_t>(b) * 64);
  y.resize(static_cast<std::size_t>(b));
  for (int i = 0; i < b; ++i) {
    std::mt19937 g(static_cast<unsigned>(1000 * step + i + 7));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int label = (step + i) % 3;
    y[static_cast<std::size_t>(i)] = label;
    for (int k = 0; k < 64; ++k)  // the class moves a bright band
      x[static_cast<std::size_t>(i * 64 + k)] =
          nd(g) + ((k / 8) % 3 == label ? 1.5f : 0.0f) + 0.25f * static_cast<float>(step % 4);
  }
}

/// A training run of TinyNet: SGD (lr 0.05, momentum 0.9) and the QAT schedule. With
/// comm == nullptr one process takes the whole global batch of `b` images; else rank r of
/// comm->size() takes [r*b/N, (r+1)*b/N), under SyncBatchStats, with averaged gradients, after
/// broadcast_state made rank 0's network everyone's.
struct TinyTrainer {
  TinyTrainer(unsigned seed, fq::Communicator* c, int batch)
      : net(seed), sched(tiny_schedule()), opt(nullptr), comm(c), b(batch) {
    net.register_with(sched);
    fq::optim::SgdOptions so;
    so.lr = 0.05;
    so.momentum = 0.9;
    opt = std::make_unique<fq::optim::Sgd>(net.parameters(), so);
    if (comm) {
      fq::broadcast_state(*comm, net, sched, *opt);
      dp = std::make_unique<fq::DataParallel>(*comm, net.parameters());
    }
  }

  /// One step (the s-th: schedule and data of step s).
  void step(int s, bool reverse_batch = false) {
    const int n = comm ? comm->size() : 1, r = comm ? comm->rank() : 0;
    const int local = b / n;
    sched.set_step(s);
    global_batch(s, b, x, y);
    if (reverse_batch)  // the same batch, images in reverse order: another summation order
      for (int i = 0; i < b / 2; ++i) {
        std::swap_ranges(x.begin() + i * 64, x.begin() + (i + 1) * 64,
                         x.begin() + (b - 1 - i) * 64);
        std::swap(y[static_cast<std::size_t>(i)], y[static_cast<std::size_t>(b - 1 - i)]);
      }
    const std::vector<float> xs(x.begin() + r * local * 64, x.begin() + (r + 1) * local * 64);
    const std::vector<std::int32_t> ys(y.begin() + r * local, y.begin() + (r + 1) * local);
    tape.clear();
    {
      std::unique_ptr<fq::SyncBatchStats> sync;
      if (comm) sync = std::make_unique<fq::SyncBatchStats>(*comm);
      const fq::Var loss = fq::ops::softmax_cross_entropy(
          tape, net.forward(tape, tape.constant(xs.data(), {local, 1, 8, 8})), ys.data());
      tape.backward(loss);
      if (dp) dp->all_reduce_gradients();
    }
    opt->step();
    opt->zero_grad();
    tape.clear();
  }
  /// The whole training state (network, schedule, optimizer) as checkpoint bytes.
  std::vector<std::uint8_t> state() { return fq::checkpoint_bytes(net, sched, *opt); }
  void load(const std::vector<std::uint8_t>& bytes) {
    fq::load_checkpoint_bytes(bytes, net, sched, *opt);
  }

  TinyNet net;
  fq::QatSchedule sched;
  std::unique_ptr<fq::optim::Sgd> opt;
  std::unique_ptr<fq::DataParallel> dp;
  fq::Communicator* comm;
  int b;
  fq::Tape tape;
  std::vector<float> x;
  std::vector<std::int32_t> y;
};

/// Trains `steps` steps (TinyTrainer).
inline void train_tiny(TinyTrainer& t, int steps, bool reverse_batch = false) {
  for (int s = 0; s < steps; ++s) t.step(s, reverse_batch);
}

/// The largest tensor_rel_diff over the parameters of two networks.
inline double params_rel_diff(TinyNet& a, TinyNet& b);

/// max_i |a_i - b_i| / max_i |b_i| over one parameter tensor (0 for equal tensors).
inline double tensor_rel_diff(const float* a, const float* b, std::size_t n) {
  double d = 0.0, m = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    d = std::max(d, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    m = std::max(m, std::abs(static_cast<double>(b[i])));
  }
  return m > 0.0 ? d / m : d;
}

inline double params_rel_diff(TinyNet& a, TinyNet& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  double worst = 0.0;
  for (std::size_t i = 0; i < pa.size(); ++i)
    worst = std::max(worst, tensor_rel_diff(pa[i].value, pb[i].value, pa[i].size));
  return worst;
}

}  // namespace fq_dist_test

#endif  // FQ_TESTS_DISTRIBUTED_DP_TEST_NET_HPP_