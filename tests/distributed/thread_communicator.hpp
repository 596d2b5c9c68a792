// SPDX-License-Identifier: MIT
// tests/distributed/thread_communicator.hpp: ThreadCommunicator — the Communicator contract
// (base/communicator.hpp) over threads of one process, so the data-parallel synchronization is
// tested with N "ranks" without MPI: rank r runs on its own thread with its own SyncBatchStats
// scope. Every collective is two barriers: each rank posts its buffer, then every rank reduces
// all posted buffers in rank order into a private copy (so every rank gets the same bits),
// waits until all have read, and copies the result back.
#ifndef FQ_TESTS_DISTRIBUTED_THREAD_COMMUNICATOR_HPP_
#define FQ_TESTS_DISTRIBUTED_THREAD_COMMUNICATOR_HPP_

#include <algorithm>           // min, max
#include <condition_variable>  // condition_variable
#include <cstddef>             // size_t
#include <cstdint>             // int64_t
#include <cstdio>              // fprintf
#include <cstdlib>             // abort
#include <cstring>             // memcpy
#include <exception>           // exception_ptr
#include <functional>          // function
#include <mutex>               // mutex, unique_lock
#include <thread>              // thread
#include <vector>              // vector

#include <fakequant/base/communicator.hpp>

namespace fq_dist_test {

/// What the ranks of one group share: the posted buffers and a reusable barrier.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), posted_(static_cast<std::size_t>(n), nullptr) {}
  int size() const noexcept { return n_; }
  void barrier() {
    std::unique_lock<std::mutex> lock(m_);
    const std::uint64_t gen = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }
  void post(int rank, void* p) { posted_[static_cast<std::size_t>(rank)] = p; }
  void* posted(int rank) const { return posted_[static_cast<std::size_t>(rank)]; }

 private:
  int n_;
  std::vector<void*> posted_;
  std::mutex m_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
};

class ThreadCommunicator final : public fq::Communicator {
 public:
  ThreadCommunicator(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return g_.size(); }
  void all_reduce(float* d, std::size_t n, fq::ReduceOp op) override { reduce(d, n, op); }
  void all_reduce(double* d, std::size_t n, fq::ReduceOp op) override { reduce(d, n, op); }
  void all_reduce(std::int64_t* d, std::size_t n, fq::ReduceOp op) override { reduce(d, n, op); }
  void broadcast(void* data, std::size_t bytes, int root) override {
    g_.post(rank_, data);
    g_.barrier();
    if (rank_ != root && bytes > 0) std::memcpy(data, g_.posted(root), bytes);
    g_.barrier();
  }
  [[noreturn]] void abort(int, const char* what) noexcept override {
    std::fprintf(stderr, "ThreadCommunicator::abort: %s\n", what ? what : "");
    std::abort();
  }

 private:
  template <class T>
  void reduce(T* d, std::size_t n, fq::ReduceOp op) {
    g_.post(rank_, d);
    g_.barrier();
    std::vector<T> r(static_cast<const T*>(g_.posted(0)), static_cast<const T*>(g_.posted(0)) + n);
    for (int k = 1; k < g_.size(); ++k) {
      const T* p = static_cast<const T*>(g_.posted(k));
      for (std::size_t i = 0; i < n; ++i)
        r[i] = op == fq::ReduceOp::kSum
                   ? static_cast<T>(r[i] + p[i])
                   : (op == fq::ReduceOp::kMin ? std::min(r[i], p[i]) : std::max(r[i], p[i]));
    }
    g_.barrier();
    std::copy(r.begin(), r.end(), d);
  }
  ThreadGroup& g_;
  int rank_;
};

/// Runs body(comm) on n threads, one rank each; rethrows the first rank's exception, if any.
inline void run_ranks(int n, const std::function<void(ThreadCommunicator&)>& body) {
  ThreadGroup g(n);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(g, r);
      try {
        body(comm);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace fq_dist_test

#endif  // FQ_TESTS_DISTRIBUTED_THREAD_COMMUNICATOR_HPP_
