// SPDX-License-Identifier: MIT
// fakequant/distributed/mpi.hpp: MpiCommunicator — the Communicator (base/communicator.hpp) on
// MPI. The only fakequant header that includes <mpi.h>; build with mpicxx, or CMake's
// MPI::MPI_CXX (find_package(MPI COMPONENTS CXX)).
//
//   int main(int argc, char** argv) {
//     fq::MpiCommunicator comm(&argc, &argv);   // MPI_Init; MPI_Finalize at destruction
//     return fq::run_or_abort(comm, [&] { ... train ... });
//   }
//
// Collectives map one to one: all_reduce -> MPI_Allreduce(MPI_IN_PLACE, MPI_FLOAT | MPI_DOUBLE
// | MPI_INT64_T, MPI_SUM | MPI_MIN | MPI_MAX), broadcast -> MPI_Bcast of bytes; counts above
// INT_MAX go in several calls. MPI_Allreduce gives every rank the same result on one
// communicator in Open MPI and MPICH (the contract fakequant's bit-identity rests on; see
// check_in_sync to verify it). abort -> MPI_Abort: the launcher ends every rank with the code.
// A failed MPI call (with MPI's default handler it never returns) is ErrorCode::kInvalidState.
#ifndef FQ_DISTRIBUTED_MPI_HPP_
#define FQ_DISTRIBUTED_MPI_HPP_

// The C API only: the deprecated C++ bindings some MPIs still ship warn under -Wextra.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <algorithm>  // min
#include <climits>    // INT_MAX
#include <cstddef>    // size_t
#include <cstdint>    // int64_t
#include <cstdio>     // fprintf, fflush
#include <cstdlib>    // abort
#include <mpi.h>

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/error.hpp>

namespace fq {

/// The Communicator on an MPI communicator (file comment).
class MpiCommunicator final : public Communicator {
 public:
  /// Initialises MPI (MPI_THREAD_FUNNELED: collectives come from one thread) unless it is
  /// already, over MPI_COMM_WORLD; finalises it at destruction if this object initialised it.
  MpiCommunicator(int* argc, char*** argv) : comm_(MPI_COMM_WORLD) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_init_ = true;
    }
    query();
  }
  /// Over an existing communicator (MPI already initialised; not finalised here).
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) { query(); }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_init_ && !finalized) MPI_Finalize();
  }

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  void all_reduce(float* data, std::size_t n, ReduceOp op) override {
    reduce(data, n, MPI_FLOAT, op);
  }
  void all_reduce(double* data, std::size_t n, ReduceOp op) override {
    reduce(data, n, MPI_DOUBLE, op);
  }
  void all_reduce(std::int64_t* data, std::size_t n, ReduceOp op) override {
    reduce(data, n, MPI_INT64_T, op);
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < bytes;) {
      const std::size_t k = std::min<std::size_t>(bytes - at, INT_MAX);
      check(MPI_Bcast(p + at, static_cast<int>(k), MPI_BYTE, root, comm_), "MPI_Bcast");
      at += k;
    }
  }
  [[noreturn]] void abort(int code, const char* what) noexcept override {
    std::fprintf(stderr, "%s\n", what ? what : "");
    std::fflush(stderr);
    MPI_Abort(comm_, code);
    std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }
  MPI_Comm native() const noexcept { return comm_; }

 private:
  void query() {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  static void check(int rc, const char* what) {
    FQ_CHECK(rc == MPI_SUCCESS, ErrorCode::kInvalidState,
             detail::msg("MpiCommunicator: ", what, " failed with MPI error ", rc));
  }
  template <class T>
  void reduce(T* data, std::size_t n, MPI_Datatype type, ReduceOp op) {
    const MPI_Op mop = op == ReduceOp::kSum ? MPI_SUM : (op == ReduceOp::kMin ? MPI_MIN : MPI_MAX);
    for (std::size_t at = 0; at < n;) {
      const std::size_t k = std::min<std::size_t>(n - at, INT_MAX);
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(k), type, mop, comm_),
            "MPI_Allreduce");
      at += k;
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  bool owns_init_ = false;
};

}  // namespace fq

#endif  // FQ_DISTRIBUTED_MPI_HPP_
