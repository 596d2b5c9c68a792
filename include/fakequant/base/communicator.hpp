// SPDX-License-Identifier: MIT
// fakequant/base/communicator.hpp: Communicator — the collective operations data-parallel
// training needs (rank, size, in-place all-reduce sum/min/max, broadcast, abort), the
// single-process implementation, and the hook through which observers and batch norm reduce
// their batch statistics over every rank.
//
// The interface has no MPI dependency: fakequant/distributed/mpi.hpp implements it on MPI, and
// a user with another collective library (NCCL, Gloo, oneCCL, a custom one) derives from it.
// Its contract, on which the synchronization's bit-identity across ranks rests:
//   - every rank calls the same collectives in the same order with the same counts;
//   - all_reduce leaves the same bits on every rank (min/max are exact; a sum must be
//     reduced in one order for all ranks, as MPI_Allreduce does on one communicator);
//   - abort(code, what) ends every rank's process (it never returns).
//
// The batch-statistics hook: while a SyncBatchStats scope is alive on a thread, the observers
// (min-max, moving-average, histogram), LearnableFakeQuant's initialisation and ops::batch_norm
// in training reduce their batch statistics over the scope's communicator, so every rank sees
// the statistics of the global batch:
//   observer:   batch_min = min over ranks, batch_max = max over ranks (then the usual update)
//   histogram:  the range grows to the global batch range, the bin counts are summed (exact)
//   batch norm: μ = Σ_ranks Σx / Σ_ranks M, σ² = Σ_ranks Σ(x−μ)² / Σ_ranks M (double sums);
//               backward sums Σdy and Σdy·x̂ over ranks for dx (γ, β keep their local sums:
//               the gradient all-reduce averages them with the other parameters)
// LearnableFakeQuant also sums the element count over ranks, so that an LSQ gradient scale
// 1/sqrt(numel·Qp) counts the global batch's elements. Tensors every rank holds alike (the
// layers' weights) are quantized under a ReplicatedStats scope: no reduction.
// Without a scope (the default) each of them makes one thread-local pointer test and is
// unchanged, bit for bit. Collectives are called outside parallel regions, on the thread that
// runs the forward; a backward reduces over the communicator its forward saw.
#ifndef FQ_BASE_COMMUNICATOR_HPP_
#define FQ_BASE_COMMUNICATOR_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int64_t
#include <cstdio>   // fprintf
#include <cstdlib>  // exit
#include <vector>   // vector

#include <fakequant/base/error.hpp>

namespace fq {

/// The reduction of an all-reduce.
enum class ReduceOp { kSum, kMin, kMax };

/// Collective operations over a fixed group of processes (the file comment's contract).
class Communicator {
 public:
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  virtual ~Communicator() = default;

  /// This process's index in [0, size()).
  virtual int rank() const noexcept = 0;
  /// Number of processes.
  virtual int size() const noexcept = 0;
  /// data[i] = op over ranks of data[i], for n elements, in place on every rank.
  virtual void all_reduce(float* data, std::size_t n, ReduceOp op) = 0;
  virtual void all_reduce(double* data, std::size_t n, ReduceOp op) = 0;
  virtual void all_reduce(std::int64_t* data, std::size_t n, ReduceOp op) = 0;
  /// Copies `bytes` bytes at data from rank `root` to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Ends every rank's process with exit code `code` after printing `what` (never returns).
  [[noreturn]] virtual void abort(int code, const char* what) noexcept = 0;
};

/// One process: every collective is the identity; abort prints and ends this process.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  void all_reduce(float*, std::size_t, ReduceOp) override {}
  void all_reduce(double*, std::size_t, ReduceOp) override {}
  void all_reduce(std::int64_t*, std::size_t, ReduceOp) override {}
  void broadcast(void*, std::size_t, int root) override {
    FQ_CHECK(root == 0, ErrorCode::kInvalidArgument,
             detail::msg("SingleProcessCommunicator::broadcast: root must be 0, got ", root));
  }
  [[noreturn]] void abort(int code, const char* what) noexcept override {
    std::fprintf(stderr, "fakequant: aborting: %s\n", what ? what : "");
    std::exit(code);
  }
};

namespace detail {
// The thread's batch-statistics communicator (null: statistics stay local).
inline Communicator*& batch_stats_slot() noexcept {
  // Mutable by design: the scopes below set and restore it (one per thread, no sharing).
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
  thread_local Communicator* comm = nullptr;
  return comm;
}
}  // namespace detail

/// The communicator the batch statistics of this thread are reduced over, or null.
inline Communicator* batch_stats_communicator() noexcept { return detail::batch_stats_slot(); }

/// While alive, the batch statistics of this thread are reduced over `comm` (file comment).
/// Scopes nest; the destructor restores the previous communicator.
class SyncBatchStats {
 public:
  explicit SyncBatchStats(Communicator& comm) noexcept : prev_(detail::batch_stats_slot()) {
    detail::batch_stats_slot() = &comm;
  }
  SyncBatchStats(const SyncBatchStats&) = delete;
  SyncBatchStats& operator=(const SyncBatchStats&) = delete;
  ~SyncBatchStats() { detail::batch_stats_slot() = prev_; }

 private:
  Communicator* prev_;
};

/// While alive, the statistics of this thread stay local even inside a SyncBatchStats scope:
/// for tensors every rank holds alike — the layers' weights (QAT layers quantize their weight
/// under it) — whose statistics need no reduction and are not a shard of a global batch (an
/// LSQ gradient scale over a weight counts its elements once, not once per rank).
class ReplicatedStats {
 public:
  ReplicatedStats() noexcept : prev_(detail::batch_stats_slot()) {
    detail::batch_stats_slot() = nullptr;
  }
  ReplicatedStats(const ReplicatedStats&) = delete;
  ReplicatedStats& operator=(const ReplicatedStats&) = delete;
  ~ReplicatedStats() { detail::batch_stats_slot() = prev_; }

 private:
  Communicator* prev_;
};

namespace detail {
/// Per-channel batch ranges -> the global ones (min and max over ranks), if a scope is alive:
/// one all-reduce (min) over [bmin, -bmax] (negation is exact, so max = -min(-x)).
inline void sync_batch_range(float* bmin, float* bmax, std::size_t n) {
  Communicator* c = batch_stats_communicator();
  if (c == nullptr) return;
  thread_local std::vector<float> buf;
  buf.resize(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    buf[i] = bmin[i];
    buf[n + i] = -bmax[i];
  }
  c->all_reduce(buf.data(), buf.size(), ReduceOp::kMin);
  for (std::size_t i = 0; i < n; ++i) {
    bmin[i] = buf[i];
    bmax[i] = -buf[n + i];
  }
}
}  // namespace detail

}  // namespace fq

#endif  // FQ_BASE_COMMUNICATOR_HPP_
