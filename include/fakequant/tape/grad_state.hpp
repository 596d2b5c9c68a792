// SPDX-License-Identifier: MIT
// fakequant/tape/grad_state.hpp: GradState — when a tape gradient gets its zeros (the
// first-writer protocol).
//
// A gradient the tape allocates (Tape::variable) starts *pending*: its memory holds garbage
// and stands for zeros. It leaves that state exactly once, in one of two ways:
//   - materialize(): the first access through Var::grad() (or grad_array(), grad_mat(),
//     grad_view()) writes the zeros, then every op accumulates (+=) as before;
//   - claim(): an op whose backward writes *every* element of the gradient asks to be its
//     first writer. If the gradient is still pending, the op stores (=) instead of adding and
//     no zeros are ever written; otherwise it adds.
// Why: the zeros cost a pass over every activation gradient (in the demo's CNN ~43 MB a step,
// written at the forward, read back by the +=), and most of those gradients are then written
// whole by one op — batch norm's dx, max pool's dx, linear's dX, fake quant's STE.
//
// Rules for ops (the tape's contract, tape.hpp): claim() is called once per gradient, outside
// any parallel region, before the op touches that gradient; an op that claimed with overwrite
// = true writes every element before the closure returns. An op with two inputs that may be
// the same Var claims and writes them one after the other (the second claim then adds).
// materialize() may run from several threads at once (ops call grad() inside parallel loops):
// one thread writes the zeros, the others wait for it.
#ifndef FQ_TAPE_GRAD_STATE_HPP_
#define FQ_TAPE_GRAD_STATE_HPP_

#include <atomic>       // atomic
#include <cstddef>      // size_t
#include <cstdint>      // uint32_t
#include <cstring>      // memset
#include <thread>       // this_thread::yield
#include <type_traits>  // is_trivially_destructible

namespace fq {
namespace detail {

/// The zero-fill state of one tape gradient of `n` floats at `g` (file comment). Lives in the
/// tape's arena, so it is trivially destructible.
struct GradState {
  static constexpr std::uint32_t kPending = 0, kZeroing = 1, kLive = 2;
  std::atomic<std::uint32_t> state{kPending};
  float* g = nullptr;
  std::size_t n = 0;

  GradState(float* grad, std::size_t count) noexcept : g(grad), n(count) {}

  bool live() const noexcept { return state.load(std::memory_order_acquire) == kLive; }

  /// Writes the zeros if no one has written the gradient yet; returns once it is live.
  void materialize() noexcept {
    std::uint32_t expected = kPending;
    if (state.compare_exchange_strong(expected, kZeroing, std::memory_order_acquire)) {
      if (n != 0) std::memset(static_cast<void*>(g), 0, n * sizeof(float));
      state.store(kLive, std::memory_order_release);
      return;
    }
    while (!live()) std::this_thread::yield();  // another thread is writing the zeros
  }

  /// True if the caller becomes the gradient's first writer and must store every element;
  /// false if the gradient already holds values (or zeros) and the caller must add.
  bool claim() noexcept {
    std::uint32_t expected = kPending;
    if (state.compare_exchange_strong(expected, kLive, std::memory_order_acq_rel)) return true;
    if (expected != kLive) materialize();  // kZeroing: wait for the zeros
    return false;
  }
};
static_assert(std::is_trivially_destructible<GradState>::value,
              "GradState lives in the arena, which never runs destructors");

}  // namespace detail

/// A gradient an op writes whole (Var::claim_grad): `overwrite` says whether to store (=)
/// or to add (+=) into `data`.
struct GradWrite {
  float* data = nullptr;
  bool overwrite = false;
};

}  // namespace fq

#endif  // FQ_TAPE_GRAD_STATE_HPP_
