// SPDX-License-Identifier: MIT
// tests/distributed/distributed.test.cpp: data-parallel synchronization without MPI — the
// single-process communicator (the synchronized paths give the local bits) and N ranks as
// threads (ThreadCommunicator): observers, histograms and batch norm see the global batch,
// the 2-rank training equals the 1-rank one with the whole batch, and mismatched networks or
// drifted states fail on every rank.
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <fakequant/base/communicator.hpp>
#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/distributed/data_parallel.hpp>
#include <fakequant/distributed/state_compare.hpp>
#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/elementwise.hpp>

#include "catch.hpp"
#include "distributed/dp_test_net.hpp"
#include "distributed/thread_communicator.hpp"

namespace fq_dist_unit {

using fq_dist_test::run_ranks;
using fq_dist_test::ThreadCommunicator;
using fq_dist_test::TinyNet;

// The [n, c] rows of data owned by rank r of `ranks` (rows split evenly).
std::vector<float> rows_of(const std::vector<float>& data, std::int64_t rows, std::int64_t cols,
                           int r, int ranks) {
  const std::int64_t per = rows / ranks;
  return std::vector<float>(data.begin() + r * per * cols, data.begin() + (r + 1) * per * cols);
}

std::vector<float> normal_data(std::size_t n, unsigned seed, float shift = 0.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(shift, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(g);
  return v;
}

// Outcome of a collective check on one rank.
struct Outcome {
  bool threw = false;
  fq::ErrorCode code = fq::ErrorCode::kInvalidArgument;
  std::string what;
};

template <class F>
std::vector<Outcome> outcomes_of(int ranks, F&& f) {
  std::vector<Outcome> out(static_cast<std::size_t>(ranks));
  run_ranks(ranks, [&](ThreadCommunicator& comm) {
    Outcome& o = out[static_cast<std::size_t>(comm.rank())];
    try {
      f(comm);
    } catch (const fq::Error& e) {
      o.threw = true;
      o.code = e.code();
      o.what = e.what();
    }
  });
  return out;
}

TEST_CASE("SyncBatchStats scopes nest and restore the previous communicator", "[distributed]") {
  REQUIRE(fq::batch_stats_communicator() == nullptr);
  fq::SingleProcessCommunicator a, b;
  {
    fq::SyncBatchStats sa(a);
    REQUIRE(fq::batch_stats_communicator() == &a);
    {
      fq::SyncBatchStats sb(b);
      REQUIRE(fq::batch_stats_communicator() == &b);
    }
    REQUIRE(fq::batch_stats_communicator() == &a);
  }
  REQUIRE(fq::batch_stats_communicator() == nullptr);
}

TEST_CASE("one rank: the synchronized training gives the local training's bits", "[distributed]") {
  fq_dist_test::TinyTrainer local(1, nullptr, 16);
  fq::SingleProcessCommunicator comm;
  fq_dist_test::TinyTrainer synced(1, &comm, 16);
  fq_dist_test::train_tiny(local, 20);
  fq_dist_test::train_tiny(synced, 20);
  REQUIRE(local.state() == synced.state());
}

TEST_CASE("min-max observers of 2 ranks hold the range of the global batch", "[distributed]") {
  const std::vector<float> data = normal_data(std::size_t{8} * 5, 3);
  const std::vector<float> data2 = normal_data(std::size_t{8} * 5, 4, 1.0f);
  fq::PerChannelMinMaxObserver whole(0.01f, 1);
  fq::MovingAverageMinMaxObserver whole_ma;
  for (const auto* d : {&data, &data2}) {
    whole.observe(fq::TensorView<const float>(d->data(), {8, 5}));
    whole_ma.observe(fq::TensorView<const float>(d->data(), {8, 5}));
  }
  std::vector<std::vector<float>> mins(2), maxs(2), ma(2);
  run_ranks(2, [&](ThreadCommunicator& comm) {
    fq::PerChannelMinMaxObserver obs(0.01f, 1);
    fq::MovingAverageMinMaxObserver obs_ma;
    fq::SyncBatchStats sync(comm);
    for (const auto* d : {&data, &data2}) {
      const std::vector<float> mine = rows_of(*d, 8, 5, comm.rank(), 2);
      obs.observe(fq::TensorView<const float>(mine.data(), {4, 5}));
      obs_ma.observe(fq::TensorView<const float>(mine.data(), {4, 5}));
    }
    const auto r = static_cast<std::size_t>(comm.rank());
    mins[r] = obs.min_val();
    maxs[r] = obs.max_val();
    ma[r] = {obs_ma.min_val()[0], obs_ma.max_val()[0]};
  });
  for (std::size_t r = 0; r < 2; ++r) {
    REQUIRE(mins[r] == whole.min_val());
    REQUIRE(maxs[r] == whole.max_val());
    REQUIRE(ma[r] == std::vector<float>{whole_ma.min_val()[0], whole_ma.max_val()[0]});
  }
  // Each rank's own half alone would give another range: the reduction did the work.
  fq::PerChannelMinMaxObserver half(0.01f, 1);
  const std::vector<float> h0 = rows_of(data, 8, 5, 0, 2);
  half.observe(fq::TensorView<const float>(h0.data(), {4, 5}));
  REQUIRE(half.min_val() != whole.min_val());
}

TEST_CASE("histograms of 3 ranks merge exactly into the global batch's", "[distributed]") {
  // Three batches with a growing range: the range grows by the global batch's extremes.
  const std::vector<std::vector<float>> batches = {normal_data(std::size_t{12} * 7, 5, 0.0f),
                                                   normal_data(std::size_t{12} * 7, 6, 3.0f),
                                                   normal_data(std::size_t{12} * 7, 7, -4.0f)};
  fq::HistogramObserver<> whole(64);
  for (const auto& b : batches) whole.observe(fq::TensorView<const float>(b.data(), {12, 7}));
  std::vector<std::vector<std::uint64_t>> counts(3);
  std::vector<std::vector<double>> edges(3);
  run_ranks(3, [&](ThreadCommunicator& comm) {
    fq::HistogramObserver<> obs(64);
    fq::SyncBatchStats sync(comm);
    for (const auto& b : batches) {
      const std::vector<float> mine = rows_of(b, 12, 7, comm.rank(), 3);
      obs.observe(fq::TensorView<const float>(mine.data(), {4, 7}));
    }
    const auto r = static_cast<std::size_t>(comm.rank());
    counts[r] = obs.histogram().counts();
    edges[r] = {obs.histogram().lower(), obs.histogram().upper(), obs.histogram().data_min(),
                obs.histogram().data_max(), static_cast<double>(obs.histogram().total())};
  });
  const fq::Histogram& h = whole.histogram();
  for (std::size_t r = 0; r < 3; ++r) {
    REQUIRE(counts[r] == h.counts());
    REQUIRE(edges[r] == std::vector<double>{h.lower(), h.upper(), h.data_min(), h.data_max(),
                                            static_cast<double>(h.total())});
  }
}

// One batch-norm forward and backward in training on rows [first, first + n) of x; the loss
// is mean(y * w) over this process's elements.
struct BnRun {
  std::vector<float> y, dx, dgamma, dbeta, running;
};
BnRun bn_run(const std::vector<float>& x, const std::vector<float>& w, std::int64_t first,
             std::int64_t n, std::int64_t c, std::int64_t hw) {
  BnRun r;
  fq::Tape tape;
  std::vector<float> xs(x.begin() + first * c * hw, x.begin() + (first + n) * c * hw);
  std::vector<float> ws(w.begin() + first * c * hw, w.begin() + (first + n) * c * hw);
  std::vector<float> gamma = {1.0f, 0.5f, 2.0f}, beta = {0.0f, 0.1f, -0.2f};
  r.dx.assign(xs.size(), 0.0f);
  r.dgamma.assign(3, 0.0f);
  r.dbeta.assign(3, 0.0f);
  r.running = {0.1f, 0.0f, -0.1f, 1.0f, 2.0f, 0.5f};
  const fq::Var xv = tape.leaf(xs.data(), r.dx.data(), {n, c, hw, 1});
  const fq::Var g = tape.leaf(gamma.data(), r.dgamma.data(), {c});
  const fq::Var b = tape.leaf(beta.data(), r.dbeta.data(), {c});
  const fq::Var y = fq::ops::batch_norm(tape, xv, g, b, r.running.data(), r.running.data() + c);
  r.y.assign(y.value(), y.value() + y.numel());
  tape.backward(
      fq::ops::mean(tape, fq::ops::mul(tape, y, tape.constant(ws.data(), {n, c, hw, 1}))));
  return r;
}

void require_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  REQUIRE(a.size() == b.size());
  CAPTURE(fq_dist_test::tensor_rel_diff(a.data(), b.data(), a.size()));
  REQUIRE(fq_dist_test::tensor_rel_diff(a.data(), b.data(), a.size()) <= tol);
}

TEST_CASE("batch norm of 2 ranks uses the global batch's statistics", "[distributed]") {
  constexpr std::int64_t kN = 6, kC = 3, kHw = 5, kHalf = kN / 2;
  const std::vector<float> x = normal_data(kN * kC * kHw, 11, 0.5f);
  const std::vector<float> w = normal_data(kN * kC * kHw, 12);
  const BnRun whole = bn_run(x, w, 0, kN, kC, kHw);
  std::vector<BnRun> ranks(2);
  run_ranks(2, [&](ThreadCommunicator& comm) {
    fq::SyncBatchStats sync(comm);
    ranks[static_cast<std::size_t>(comm.rank())] =
        bn_run(x, w, comm.rank() * kHalf, kHalf, kC, kHw);
  });
  // Identical running statistics on both ranks, those of the global batch.
  REQUIRE(ranks[0].running == ranks[1].running);
  require_close(ranks[0].running, whole.running, 1e-6);
  // Rank 0's half is normalized with the global mean and variance (alone it would not be).
  const std::vector<float> y0(whole.y.begin(), whole.y.begin() + kHalf * kC * kHw);
  require_close(ranks[0].y, y0, 1e-6);
  const BnRun alone = bn_run(x, w, 0, kHalf, kC, kHw);
  REQUIRE(fq_dist_test::tensor_rel_diff(alone.y.data(), y0.data(), y0.size()) > 1e-3);
  // Gradients: each rank's loss is a mean over half the elements (twice the global weight);
  // the parameters' gradients averaged over ranks and dx / 2 are the global batch's.
  std::vector<float> dg(3), db(3), dx;
  for (std::size_t k = 0; k < 3; ++k) {
    dg[k] = (ranks[0].dgamma[k] + ranks[1].dgamma[k]) / 2.0f;
    db[k] = (ranks[0].dbeta[k] + ranks[1].dbeta[k]) / 2.0f;
  }
  for (const BnRun& r : ranks)
    for (float v : r.dx) dx.push_back(v / 2.0f);
  require_close(dg, whole.dgamma, 1e-5);
  require_close(db, whole.dbeta, 1e-5);
  require_close(dx, whole.dx, 1e-5);
}

// Per rank: the largest parameter difference to the one-process step, and whether the exact
// quantities matched.
struct StepReport {
  double worst_params = 0.0, worst_running = 0.0;
  bool input_qparams_equal = true;
  std::vector<std::uint8_t> final_state;
};

TEST_CASE("2 ranks with batch B/2 step as 1 rank with batch B, 20 steps", "[distributed]") {
  // Each step starts from the one-process state of the step before (loaded into every rank),
  // so each of the 20 steps — observers, LSQ initialisation and learning, BN in training and
  // frozen — is compared alone: float summation order is the only difference.
  std::vector<StepReport> rep(2);
  run_ranks(2, [&](ThreadCommunicator& comm) {
    StepReport& r = rep[static_cast<std::size_t>(comm.rank())];
    fq_dist_test::TinyTrainer ref(1, nullptr, 16);
    // Another seed per rank: broadcast_state makes rank 0's network everyone's.
    fq_dist_test::TinyTrainer dp(1u + static_cast<unsigned>(comm.rank()), &comm, 16);
    for (int s = 0; s < 20; ++s) {
      ref.step(s);
      dp.step(s);
      fq::check_in_sync(comm, dp.net, dp.sched);  // every rank holds the same bits
      r.worst_params = std::max(r.worst_params, fq_dist_test::params_rel_diff(dp.net, ref.net));
      r.worst_running =
          std::max(r.worst_running,
                   std::max(fq_dist_test::tensor_rel_diff(dp.net.conv.running_mean().data(),
                                                          ref.net.conv.running_mean().data(), 4),
                            fq_dist_test::tensor_rel_diff(dp.net.conv.running_var().data(),
                                                          ref.net.conv.running_var().data(), 4)));
      // The input quantizer observes the raw images: min/max reduce exactly, so its range and
      // qparams equal the one process's bit for bit.
      const auto& a = dp.net.in.quantizer();
      const auto& b = ref.net.in.quantizer();
      r.input_qparams_equal = r.input_qparams_equal &&
                              a.observer().min_val() == b.observer().min_val() &&
                              a.observer().max_val() == b.observer().max_val() &&
                              a.quantizer().scale() == b.quantizer().scale() &&
                              a.quantizer().zero_point() == b.quantizer().zero_point();
      dp.load(ref.state());
    }
    r.final_state = dp.state();
  });
  for (const StepReport& r : rep) {
    CAPTURE(r.worst_params, r.worst_running);
    REQUIRE(r.worst_params <= 1e-5);
    REQUIRE(r.worst_running <= 1e-5);
    REQUIRE(r.input_qparams_equal);
  }
  REQUIRE(rep[0].final_state == rep[1].final_state);
}

TEST_CASE("2 ranks trained freely for 20 steps stay bit-identical", "[distributed]") {
  fq_dist_test::TinyTrainer single(1, nullptr, 16);
  fq_dist_test::train_tiny(single, 20);
  std::vector<std::vector<std::uint8_t>> states(2);
  std::vector<int> input_equal(2, 0);
  run_ranks(2, [&](ThreadCommunicator& comm) {
    fq_dist_test::TinyTrainer dp(1u + static_cast<unsigned>(comm.rank()), &comm, 16);
    fq_dist_test::train_tiny(dp, 20);
    fq::check_in_sync(comm, dp.net, dp.sched, *dp.opt);
    states[static_cast<std::size_t>(comm.rank())] = dp.state();
    const auto& a = dp.net.in.quantizer();
    const auto& b = single.net.in.quantizer();
    input_equal[static_cast<std::size_t>(comm.rank())] =
        a.observer().min_val() == b.observer().min_val() &&
        a.observer().max_val() == b.observer().max_val() &&
        a.quantizer().scale() == b.quantizer().scale();
  });
  REQUIRE(states[0] == states[1]);
  REQUIRE(input_equal == std::vector<int>{1, 1});
}

TEST_CASE("ranks that built different networks fail together at the start", "[distributed]") {
  const auto out = outcomes_of(2, [](ThreadCommunicator& comm) {
    TinyNet net(1, comm.rank() == 1 ? 16 : 8);  // rank 1: a wider hidden layer
    fq::check_same_network(comm, net);
  });
  for (const Outcome& o : out) {
    REQUIRE(o.threw);
    REQUIRE(o.code == fq::ErrorCode::kShapeMismatch);
    CAPTURE(o.what);
    REQUIRE(o.what.find("rank 1 built a different network") != std::string::npos);
    REQUIRE(o.what.find("0.fc1.") != std::string::npos);
  }
  // Same structure, different values: the structure check passes.
  const auto same = outcomes_of(2, [](ThreadCommunicator& comm) {
    TinyNet net(1u + static_cast<unsigned>(comm.rank()));
    fq::check_same_network(comm, net);
  });
  for (const Outcome& o : same) REQUIRE_FALSE(o.threw);
}

TEST_CASE("different QAT schedules or parameter lists are caught on every rank", "[distributed]") {
  const auto sched = outcomes_of(2, [](ThreadCommunicator& comm) {
    fq::QatScheduleConfig c = fq_dist_test::tiny_schedule();
    if (comm.rank() == 1) c.bn_freeze = 11;
    fq::QatSchedule s(c);
    fq::check_same_network(comm, s);
  });
  for (const Outcome& o : sched) {
    REQUIRE(o.threw);
    CAPTURE(o.what);
    REQUIRE(o.what.find("rank 1 has '0.config config = 0 0 14 11 3'") !=
            std::string::npos);  // rank 1's
  }
  const auto params = outcomes_of(2, [](ThreadCommunicator& comm) {
    TinyNet net(1);
    auto list = net.parameters();
    if (comm.rank() == 1) list.pop_back();
    fq::DataParallel dp(comm, list);
  });
  for (const Outcome& o : params) {
    REQUIRE(o.threw);
    REQUIRE(o.code == fq::ErrorCode::kParamCountMismatch);
  }
}

TEST_CASE("check_in_sync names the entry where a rank drifted", "[distributed]") {
  const auto out = outcomes_of(2, [](ThreadCommunicator& comm) {
    TinyNet net(1u + static_cast<unsigned>(comm.rank()));
    fq::QatSchedule s(fq_dist_test::tiny_schedule());
    fq::broadcast_state(comm, net, s);
    fq::check_in_sync(comm, net, s);  // equal after the broadcast
    if (comm.rank() == 1) net.conv.running_mean()[2] += 1e-3f;
    fq::check_in_sync(comm, net, s);
  });
  for (const Outcome& o : out) {
    REQUIRE(o.threw);
    REQUIRE(o.code == fq::ErrorCode::kInvalidState);
    CAPTURE(o.what);
    REQUIRE(o.what.find("0.conv.running_mean") != std::string::npos);
  }
}

TEST_CASE("gradients are averaged over ranks in one all-reduce", "[distributed]") {
  std::vector<std::vector<float>> got(3);
  std::vector<std::size_t> all_sizes(3);
  run_ranks(3, [&](ThreadCommunicator& comm) {
    std::vector<float> v1(5, 0.0f), g1(5), v2(2, 0.0f), g2(2);
    for (std::size_t i = 0; i < 5; ++i)
      g1[i] = static_cast<float>(static_cast<std::size_t>(comm.rank()) * 10 + i);
    for (std::size_t i = 0; i < 2; ++i) g2[i] = static_cast<float>(comm.rank() == 2 ? 3 : 0);
    fq::DataParallel dp(comm, {{v1.data(), g1.data(), 5}, {v2.data(), g2.data(), 2}});
    dp.all_reduce_gradients();
    all_sizes[static_cast<std::size_t>(comm.rank())] = dp.bucket_size();
    std::vector<float> all(g1);
    all.insert(all.end(), g2.begin(), g2.end());
    got[static_cast<std::size_t>(comm.rank())] = all;
  });
  const std::vector<float> want = {10.0f, 11.0f, 12.0f, 13.0f, 14.0f, 1.0f, 1.0f};
  for (const auto& g : got) REQUIRE(g == want);
  for (std::size_t n : all_sizes) REQUIRE(n == 7);
}

}  // namespace fq_dist_unit
