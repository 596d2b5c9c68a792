// SPDX-License-Identifier: MIT
// fakequant/tape/arena.hpp: Arena — a 64-byte-aligned bump allocator for a tape's
// intermediate values, gradients and node records.
//
// Memory comes from a list of blocks. reset() rewinds to the first block without freeing, so
// a training loop that records the same graph every step allocates from the heap only in its
// first step (steady state: no heap allocation). A request larger than the remaining room
// moves to the next block, or appends a block of max(block_size, request) bytes. The blocks
// are kept as they are: a step that records the same requests as the last one makes the same
// choices, so it reuses the same memory — whose pages the first step touched. (Replacing the
// blocks by one large block, as this arena once did, made a new tape's second step touch that
// block's fresh pages too: one page fault per 4 KiB, ~20x a step of the demo's CNN in a VM.)
// A request above detail::kMaxBytes (or whose element count times size overflows) and a
// failed heap allocation are reported as ErrorCode::kOutOfMemory.
#ifndef FQ_TAPE_ARENA_HPP_
#define FQ_TAPE_ARENA_HPP_

#include <cstddef>      // size_t, max_align_t
#include <cstdint>      // int64_t
#include <cstdlib>      // aligned_alloc, free
#include <cstring>      // memset
#include <type_traits>  // is_trivially_destructible
#include <utility>      // exchange
#include <vector>       // vector

#include <fakequant/base/checked.hpp>
#include <fakequant/base/error.hpp>

#if defined(__linux__)
#include <sys/mman.h>  // madvise
#endif

namespace fq {

class Arena {
 public:
  /// Alignment of every allocation: one cache line, and enough for any SIMD register.
  static constexpr std::size_t kAlign = 64;

  explicit Arena(std::size_t block_size = std::size_t{1} << 20)
      : block_size_(round_up(checked_block_size(block_size))) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena& operator=(Arena&&) = delete;
  Arena(Arena&& o) noexcept
      : blocks_(std::move(o.blocks_)),
        block_size_(o.block_size_),
        current_(std::exchange(o.current_, 0)),
        used_(std::exchange(o.used_, 0)),
        in_use_(std::exchange(o.in_use_, 0)),
        peak_(std::exchange(o.peak_, 0)) {}
  ~Arena() {
    for (Block& b : blocks_) std::free(b.data);
  }

  /// `bytes` bytes aligned to kAlign; never null (out of memory is reported as an error).
  void* allocate(std::size_t bytes) {
    // Checked before rounding up, which would wrap a request near SIZE_MAX to a tiny one.
    FQ_CHECK(bytes <= static_cast<std::size_t>(detail::kMaxBytes), ErrorCode::kOutOfMemory,
             detail::msg("Arena: a request of ", bytes, " bytes exceeds the largest allocation (",
                         detail::kMaxBytes, " bytes)"));
    bytes = round_up(bytes == 0 ? 1 : bytes);
    while (current_ < blocks_.size() && blocks_[current_].size - used_ < bytes) {
      ++current_;
      used_ = 0;
    }
    if (current_ == blocks_.size()) {
      std::size_t size = bytes > block_size_ ? bytes : block_size_;
      void* p = allocate_block(size);
      FQ_CHECK(p != nullptr, ErrorCode::kOutOfMemory,
               detail::msg("Arena: out of memory allocating ", size, " bytes"));
      blocks_.push_back({static_cast<char*>(p), size});
      used_ = 0;
    }
    char* p = blocks_[current_].data + used_;
    used_ += bytes;
    in_use_ += bytes;
    if (in_use_ > peak_) peak_ = in_use_;
    return p;
  }

  /// An uninitialised array of n T (T trivially destructible: the arena never runs destructors).
  template <class T>
  T* allocate_array(std::size_t n) {
    static_assert(std::is_trivially_destructible<T>::value,
                  "Arena::allocate_array: the arena never runs destructors; use a trivially "
                  "destructible element type.");
    return static_cast<T*>(
        allocate(detail::checked_bytes(static_cast<std::int64_t>(n), sizeof(T), "Arena")));
  }
  /// A zero-filled array of n T.
  template <class T>
  T* allocate_zeroed(std::size_t n) {
    T* p = allocate_array<T>(n);
    std::memset(static_cast<void*>(p), 0, n * sizeof(T));
    return p;
  }

  /// A position to rewind to (nested scopes).
  struct Mark {
    std::size_t block, used, in_use;
  };
  Mark mark() const noexcept { return {current_, used_, in_use_}; }
  /// Frees (for reuse) everything allocated after `m`.
  void rewind(const Mark& m) noexcept {
    current_ = m.block;
    used_ = m.used;
    in_use_ = m.in_use;
  }

  /// Frees everything for reuse (the blocks stay: file comment).
  void reset() noexcept {
    current_ = 0;
    used_ = 0;
    in_use_ = 0;
  }

  /// Bytes handed out since the last reset, and the largest such figure ever.
  std::size_t bytes_in_use() const noexcept { return in_use_; }
  std::size_t peak_bytes() const noexcept { return peak_; }
  /// Number of heap blocks currently held.
  std::size_t block_count() const noexcept { return blocks_.size(); }

 private:
  struct Block {
    char* data;
    std::size_t size;
  };
  static std::size_t round_up(std::size_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }
  /// A block of at least `size` bytes (rounded up in place). On Linux a block of 2 MiB or more
  /// is 2 MiB-aligned and advised to use transparent huge pages: its first touch then faults
  /// once per 2 MiB instead of once per 4 KiB (a new tape's first step, or a first batch of a
  /// new size, touches every page; in a VM each fault costs microseconds). Advice only: a
  /// kernel that refuses it leaves ordinary pages.
  static void* allocate_block(std::size_t& size) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    if (size >= kHuge && size <= static_cast<std::size_t>(detail::kMaxBytes) - kHuge) {
      size = (size + kHuge - 1) / kHuge * kHuge;
      void* p = std::aligned_alloc(kHuge, size);
      if (p) (void)::madvise(p, size, MADV_HUGEPAGE);
      return p;
    }
#endif
    return std::aligned_alloc(kAlign, size);
  }
  static std::size_t checked_block_size(std::size_t n) {
    FQ_CHECK(n <= static_cast<std::size_t>(detail::kMaxBytes), ErrorCode::kOutOfMemory,
             detail::msg("Arena: a block size of ", n, " bytes exceeds the largest allocation (",
                         detail::kMaxBytes, " bytes)"));
    return n;
  }

  std::vector<Block> blocks_;
  std::size_t block_size_;
  std::size_t current_ = 0;  // index of the block being bumped through
  std::size_t used_ = 0;     // bytes used in blocks_[current_]
  std::size_t in_use_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace fq

#endif  // FQ_TAPE_ARENA_HPP_
