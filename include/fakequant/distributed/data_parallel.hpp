// SPDX-License-Identifier: MIT
// fakequant/distributed/data_parallel.hpp: data-parallel QAT over a Communicator
// (base/communicator.hpp) — the start (broadcast_state), the gradient all-reduce of each step
// (DataParallel) and the error path (run_or_abort).
//
// A training step on N ranks, each with its own B/N samples of the global batch B:
//   fq::SyncBatchStats sync(comm);       // observers and batch norm see the global batch
//   forward, loss = mean over the rank's B/N samples, backward;
//   dp.all_reduce_gradients();           // g = (1/N) Σ_ranks g_rank: the global mean's gradient
//   optimizer.step();                    // the same update, bit for bit, on every rank
// Gradients (every ParamRef: weights, biases, γ/β, LSQ scales and zero points, PACT α) are
// packed into one bucket, summed by one all-reduce and scaled by 1/N (exact for N a power of
// two); the all-reduce leaves the same bits on every rank (the Communicator contract), so the
// parameters stay identical without being re-broadcast.
// Start: broadcast_state(comm, xs...) first checks the structure (check_same_network,
// distributed/state_compare.hpp), then copies rank 0's whole state — parameters, quantizer
// state, observer ranges, running statistics, switches, optimizer moments — to every rank
// through the checkpoint format (convert/checkpoint.hpp), so every replica starts equal even if
// the ranks seeded differently.
// Schedules: a QatSchedule is a pure function of the step number; given to
// check_same_network its configuration (the freeze steps) is compared, and given to
// check_in_sync its step too, so every rank switches on the same step.
// Errors: a check that fails on one rank only (bad data on its shard) would leave the others
// waiting in the next collective. run_or_abort(comm, f) runs f and, if it throws, prints the
// error with the rank and calls comm.abort(code): every rank's process ends with that exit code
// (MPI_Abort under MPI). The collective checks of this folder fail on every rank together.
#ifndef FQ_DISTRIBUTED_DATA_PARALLEL_HPP_
#define FQ_DISTRIBUTED_DATA_PARALLEL_HPP_

#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint8_t
#include <exception>    // exception
#include <string>       // string
#include <type_traits>  // is_void
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/distributed/state_compare.hpp>
#include <fakequant/optim/param.hpp>

namespace fq {

/// The gradient all-reduce of a fixed parameter list (file comment).
class DataParallel {
 public:
  /// `params`: every trainable parameter, in the same order on every rank (e.g.
  /// optim::parameters_of(layers..., quantizers...)). Collective: the ranks' lists are checked
  /// to have the same sizes (ErrorCode::kParamCountMismatch on every rank otherwise).
  DataParallel(Communicator& comm, std::vector<optim::ParamRef> params)
      : comm_(&comm), params_(std::move(params)) {
    optim::detail::check_param_list(params_, "DataParallel");
    bucket_.resize(optim::detail::total_size(params_));
    // [count, total elements, then each size]: rank 0's against every rank's.
    std::vector<std::string> lines{
        detail::msg("parameters ", params_.size(), " elements ", bucket_.size())};
    for (std::size_t i = 0; i < params_.size(); ++i)
      lines.push_back(detail::msg("parameter ", i, " ('", params_[i].name ? params_[i].name : "",
                                  "') elements ", params_[i].size));
    detail::compare_with_rank0(comm, lines, "DataParallel", "has a different parameter list from",
                               ErrorCode::kParamCountMismatch);
  }

  /// Collective: every gradient becomes its mean over ranks (one all-reduce, file comment).
  void all_reduce_gradients() {
    if (comm_->size() == 1) return;  // the mean of one rank is itself
    std::size_t at = 0;
    for (const optim::ParamRef& p : params_) {
      for (std::size_t i = 0; i < p.size; ++i) bucket_[at + i] = p.grad[i];
      at += p.size;
    }
    comm_->all_reduce(bucket_.data(), bucket_.size(), ReduceOp::kSum);
    const float inv = 1.0f / static_cast<float>(comm_->size());
    at = 0;
    for (const optim::ParamRef& p : params_) {
      for (std::size_t i = 0; i < p.size; ++i) p.grad[i] = bucket_[at + i] * inv;
      at += p.size;
    }
  }

  Communicator& communicator() const noexcept { return *comm_; }
  const std::vector<optim::ParamRef>& parameters() const noexcept { return params_; }
  /// Floats reduced per step.
  std::size_t bucket_size() const noexcept { return bucket_.size(); }

 private:
  Communicator* comm_;
  std::vector<optim::ParamRef> params_;
  std::vector<float> bucket_;
};

/// Collective: checks that every rank built xs... alike (check_same_network), then copies
/// rank 0's whole state of xs... to every rank (file comment). Errors fail on every rank.
template <class... Ts>
void broadcast_state(Communicator& comm, Ts&... xs) {
  constexpr int kRoot = 0;
  check_same_network(comm, xs...);
  std::vector<std::uint8_t> bytes;
  std::string error;
  ErrorCode code = ErrorCode::kInvalidState;
  constexpr const char* kWhere = "broadcast_state";
  if (comm.rank() == kRoot)
    detail::run_capturing_error(kWhere, comm, error, code,
                                [&] { bytes = checkpoint_bytes(xs...); });
  detail::agree_or_fail(comm, error.empty(), error, code);
  detail::broadcast_bytes(comm, bytes, kRoot);
  if (comm.rank() != kRoot)
    detail::run_capturing_error(kWhere, comm, error, code,
                                [&] { load_checkpoint_bytes(bytes, xs...); });
  detail::agree_or_fail(comm, error.empty(), error, code);
}

/// Runs f(); if it throws, prints "fakequant rank r: <what>" and ends every rank with exit code
/// `error_exit_code` through comm.abort (file comment). Returns what f returns (int) or 0.
template <class F>
int run_or_abort(Communicator& comm, F&& f, int error_exit_code = 3) {
#if FQ_HAS_EXCEPTIONS
  std::string what;
  try {
    if constexpr (std::is_void<decltype(f())>::value) {
      f();
      return 0;
    } else {
      return static_cast<int>(f());
    }
  } catch (const std::exception& e) {
    what = detail::msg("fakequant rank ", comm.rank(), ": ", e.what());
  } catch (...) {
    what = detail::msg("fakequant rank ", comm.rank(), ": unknown exception");
  }
  comm.abort(error_exit_code, what.c_str());
  return error_exit_code;  // not reached: abort ends the process (a virtual [[noreturn]])
#else
  // Without exceptions an error ends this process (base/error.hpp); the launcher ends the rest.
  (void)comm;
  (void)error_exit_code;
  if constexpr (std::is_void<decltype(f())>::value) {
    f();
    return 0;
  } else {
    return static_cast<int>(f());
  }
#endif
}

}  // namespace fq

#endif  // FQ_DISTRIBUTED_DATA_PARALLEL_HPP_
