// SPDX-License-Identifier: MIT
// fakequant/base/aligned.hpp: Align64Allocator, a std::allocator whose blocks start on a
// 64-byte boundary. Why: packed int8 weights are read as whole 64-byte blocks, and Eigen picks
// scalar or vector code (whose float roundings differ) by a buffer's address, so trainable
// tensors on one fixed alignment train bit for bit alike wherever the heap puts them.
#ifndef FQ_BASE_ALIGNED_HPP_
#define FQ_BASE_ALIGNED_HPP_

#include <cstddef>  // size_t
#include <new>      // align_val_t, operator new

namespace fq {

namespace detail {
/// A std::allocator with 64-byte alignment (one cache line, one zmm).
template <class T>
struct Align64Allocator {
  using value_type = T;
  Align64Allocator() noexcept = default;
  template <class U>
  Align64Allocator(const Align64Allocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Align64Allocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const Align64Allocator<U>&) const noexcept {
    return false;
  }
};
}  // namespace detail

}  // namespace fq

#endif  // FQ_BASE_ALIGNED_HPP_
