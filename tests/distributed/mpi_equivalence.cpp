// SPDX-License-Identifier: MIT
// tests/distributed/mpi_equivalence.cpp: data-parallel QAT on MPI (fakequant/distributed/mpi.hpp),
// run by ctest under `mpirun --oversubscribe --allow-run-as-root -np 2` (tests/CMakeLists.txt):
//
//   mpi_equivalence equivalence   20 steps of the conv+BN+linear QAT network (dp_test_net.hpp),
//                                 N ranks with B/N images each against one process with B (run
//                                 on every rank, without synchronization): each step from the
//                                 same state, parameters within 1e-5 relative (largest error
//                                 over a tensor / its largest value), BN running statistics too,
//                                 the input quantizer's qparams bit for bit (exact min/max); every
//                                 rank's whole state bit-identical after each step; then 20
//                                 free steps: ranks bit-identical, input qparams exact.
//   mpi_equivalence mismatch      rank 1 builds a wider layer: every rank must catch the same
//                                 ErrorCode::kShapeMismatch naming the entry (exit 0 if so).
//   mpi_equivalence fault         rank 1 throws at step 5 inside run_or_abort: every rank must
//                                 end (MPI_Abort) with exit code 3 and the message, no hang
//                                 (ctest: a timeout and the message's regular expression).
//   mpi_equivalence bench [n]     not a test: the time of one all-reduce of n floats (default
//                                 421,738: the Fashion-MNIST demo's parameters), median of 200
//                                 after a barrier (docs/distributed.md, "What it costs").
// Prints "mpi_equivalence: PASS" (rank 0) when every check held; exits non-zero otherwise.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fakequant/distributed/data_parallel.hpp>
#include <fakequant/distributed/mpi.hpp>
#include <fakequant/distributed/state_compare.hpp>

#include "distributed/dp_test_net.hpp"

namespace fq_mpi_test {

constexpr int kSteps = 20;
constexpr int kGlobalBatch = 16;

// Every rank's `ok`, and'ed: true on every rank iff true on all.
bool all_ok(fq::Communicator& comm, bool ok) {
  std::int64_t v = ok ? 1 : 0;
  comm.all_reduce(&v, 1, fq::ReduceOp::kMin);
  return v == 1;
}

bool input_qparams_equal(fq_dist_test::TinyNet& a, fq_dist_test::TinyNet& b) {
  const auto& qa = a.in.quantizer();
  const auto& qb = b.in.quantizer();
  return qa.observer().min_val() == qb.observer().min_val() &&
         qa.observer().max_val() == qb.observer().max_val() &&
         qa.quantizer().scale() == qb.quantizer().scale() &&
         qa.quantizer().zero_point() == qb.quantizer().zero_point();
}

int equivalence(fq::Communicator& comm) {
  fq_dist_test::TinyTrainer ref(1, nullptr, kGlobalBatch);
  fq_dist_test::TinyTrainer dp(1u + static_cast<unsigned>(comm.rank()), &comm, kGlobalBatch);
  double worst = 0.0, worst_running = 0.0;
  bool input_exact = true;
  for (int s = 0; s < kSteps; ++s) {
    ref.step(s);
    dp.step(s);
    fq::check_in_sync(comm, dp.net, dp.sched, *dp.opt);  // throws on every rank if not
    worst = std::max(worst, fq_dist_test::params_rel_diff(dp.net, ref.net));
    worst_running = std::max({worst_running,
                              fq_dist_test::tensor_rel_diff(dp.net.conv.running_mean().data(),
                                                            ref.net.conv.running_mean().data(), 4),
                              fq_dist_test::tensor_rel_diff(dp.net.conv.running_var().data(),
                                                            ref.net.conv.running_var().data(), 4)});
    input_exact = input_exact && input_qparams_equal(dp.net, ref.net);
    dp.load(ref.state());
  }
  // Free run: no reloading; float noise may grow through rounding decisions, but every rank
  // stays bit-identical and the input quantizer exact.
  fq_dist_test::TinyTrainer single(1, nullptr, kGlobalBatch);
  fq_dist_test::TinyTrainer free(1u + static_cast<unsigned>(comm.rank()), &comm, kGlobalBatch);
  fq_dist_test::train_tiny(single, kSteps);
  fq_dist_test::train_tiny(free, kSteps);
  fq::check_in_sync(comm, free.net, free.sched, *free.opt);
  const bool free_input_exact = input_qparams_equal(free.net, single.net);
  const double free_diff = fq_dist_test::params_rel_diff(free.net, single.net);
  const bool ok = worst <= 1e-5 && worst_running <= 1e-5 && input_exact && free_input_exact;
  std::printf(
      "rank %d/%d: per-step parameters %.3g, running statistics %.3g (bound 1e-5); input "
      "qparams exact: %s (free run: %s); free 20-step run's parameters vs one process %.3g\n",
      comm.rank(), comm.size(), worst, worst_running, input_exact ? "yes" : "no",
      free_input_exact ? "yes" : "no", free_diff);
  std::fflush(stdout);
  return all_ok(comm, ok) ? 0 : 1;
}

int mismatch(fq::Communicator& comm) {
  fq_dist_test::TinyNet net(1, comm.rank() == 1 ? 16 : 8);
  std::string what;
  fq::ErrorCode code = fq::ErrorCode::kInvalidArgument;
  try {
    fq::check_same_network(comm, net);
  } catch (const fq::Error& e) {
    what = e.what();
    code = e.code();
  }
  std::printf("rank %d caught: %s\n", comm.rank(), what.c_str());
  std::fflush(stdout);
  const bool ok = code == fq::ErrorCode::kShapeMismatch &&
                  what.find("rank 1 built a different network") != std::string::npos &&
                  what.find("0.fc1.") != std::string::npos;
  return all_ok(comm, ok) ? 0 : 1;
}

int fault(fq::Communicator& comm) {
  fq_dist_test::TinyTrainer dp(1, &comm, kGlobalBatch);
  for (int s = 0; s < kSteps; ++s) {
    // Rank 1's data goes bad at step 5: its observer refuses it; rank 0 goes on into the next
    // collective, where it would wait forever without the abort.
    if (s == 5 && comm.rank() == 1)
      fq::detail::fail(fq::ErrorCode::kNonFiniteInput, "injected fault: NaN in rank 1's batch");
    dp.step(s);
  }
  return 0;
}

int bench(fq::Communicator& comm, std::size_t n) {
  std::vector<float> g(n, 1.0f);
  std::vector<double> t;
  for (int i = 0; i < 220; ++i) {
    std::int64_t sync = 0;  // a barrier: every rank starts the all-reduce together
    comm.all_reduce(&sync, 1, fq::ReduceOp::kSum);
    const auto t0 = std::chrono::steady_clock::now();
    comm.all_reduce(g.data(), g.size(), fq::ReduceOp::kSum);
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    if (i >= 20) t.push_back(d.count());  // after a warm-up
  }
  std::sort(t.begin(), t.end());
  if (comm.rank() == 0)
    std::printf(
        "all-reduce of %zu floats over %d ranks: median %.3f ms, p10 %.3f ms, p90 %.3f ms\n", n,
        comm.size(), 1e3 * t[t.size() / 2], 1e3 * t[t.size() / 10], 1e3 * t[t.size() * 9 / 10]);
  return 0;
}

}  // namespace fq_mpi_test

int main(int argc, char** argv) {
  fq::MpiCommunicator comm(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "equivalence";
  int rc = fq::run_or_abort(comm, [&] {
    if (mode == "equivalence") return fq_mpi_test::equivalence(comm);
    if (mode == "mismatch") return fq_mpi_test::mismatch(comm);
    if (mode == "fault") return fq_mpi_test::fault(comm);
    if (mode == "bench")
      return fq_mpi_test::bench(comm, argc > 2 ? std::stoul(argv[2]) : std::size_t{421738});
    std::fprintf(stderr, "usage: mpi_equivalence equivalence|mismatch|fault\n");
    return 2;
  });
  if (comm.rank() == 0 && rc == 0) std::printf("mpi_equivalence: PASS (%s)\n", mode.c_str());
  return rc;
}
