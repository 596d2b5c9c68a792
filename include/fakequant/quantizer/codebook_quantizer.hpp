// SPDX-License-Identifier: MIT
// fakequant/quantizer/codebook_quantizer.hpp: CodebookFakeQuantizer, block-wise absmax fake
// quantization onto a non-uniform level set (NF4, powers of two, a user codebook), and its
// presets fq::Nf4Block64, fq::Nf4Block32, fq::Nf4Block64Bitsandbytes, fq::Pow2Block64,
// fq::CodebookBlock.
//
//   fq::Nf4Block64 q;                 // QLoRA NF4, absmax per 64 elements of the last axis
//   q.forward(w, w_q, &mask);         // y = L[nearest(x * f32(1/amax_b))] * amax_b
//   q.backward(dy, mask, dx);         // dx = dy * mask (STE)
//   fq::CodebookBlock u(fq::make_pow2_codebook(4, true, true), 32);   // run-time codebook
// Forward: kernels/codebook_fake_quantize.hpp (nearest level, ties to the lower level, values
// beyond the ends clamp to the end levels, NaN -> NaN, +-Inf -> end level with mask 0).
// Gradient: the straight-through estimator, dx = dy where L[0]*s <= x <= L[n-1]*s, else 0
// (with dynamic absmax every finite x is inside when the codebook spans [-1, 1]); the block
// scale is treated as a constant (no gradient through amax), as QLoRA (frozen NF4 weights) and
// TorchAO's NF4Tensor. Blocks: Block consecutive elements of each row of the last axis; Tail
// says what a short last block does (kShortLast: its own absmax; kMustDivide: an error).
// Scale modes: dynamic (default, QLoRA/bitsandbytes: the absmax of each block is recomputed
// at every forward and kept, scale()), or frozen (set_scales(), or freeze() keeping the last
// forward's): a frozen quantizer uses the stored block absmax values and refuses an x with
// another block layout (kShapeMismatch). No double quantization of the absmax values
// (bitsandbytes' compress_statistics): they stay float32.
#ifndef FQ_QUANTIZER_CODEBOOK_QUANTIZER_HPP_
#define FQ_QUANTIZER_CODEBOOK_QUANTIZER_HPP_

#include <cmath>        // isfinite
#include <cstdint>      // int64_t
#include <type_traits>  // is_same
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/base/state.hpp>
#include <fakequant/format/codebook.hpp>
#include <fakequant/kernels/codebook_fake_quantize.hpp>
#include <fakequant/kernels/fake_quantize.hpp>

namespace fq {

/// Block-wise absmax codebook fake quantizer (see the file comment).
/// @tparam Book a static codebook type (fq::Nf4, fq::Nf4Bitsandbytes, fq::Pow2Signed<E>) or
///   fq::RuntimeCodebook (the codebook is a constructor argument).
/// @tparam BlockSize > 0, fq::kRuntimeGroupSize (constructor argument) or fq::kWholeAxisGroup
///   (one block per row).
template <class Book = Nf4, int BlockSize = 64, GroupTail Tail = GroupTail::kShortLast>
class CodebookFakeQuantizer {
  static_assert(BlockSize > 0 || BlockSize == kRuntimeGroupSize || BlockSize == kWholeAxisGroup,
                "CodebookFakeQuantizer: BlockSize must be > 0, fq::kRuntimeGroupSize or "
                "fq::kWholeAxisGroup.");
  static constexpr bool kRuntimeBook = std::is_same<Book, RuntimeCodebook>::value;

 public:
  using book_type = Book;
  static constexpr int kBlockSize = BlockSize;
  static constexpr GroupTail kTail = Tail;
  /// For the testing kit: nearest level (half the bracketing cell at most).
  static constexpr bool kRoundsToNearest = true;

  /// A static codebook with a compile-time block size.
  CodebookFakeQuantizer() {
    static_assert(!kRuntimeBook,
                  "CodebookFakeQuantizer: a RuntimeCodebook quantizer needs its fq::Codebook at "
                  "construction.");
    static_assert(BlockSize != kRuntimeGroupSize,
                  "CodebookFakeQuantizer: a kRuntimeGroupSize quantizer needs its block size at "
                  "construction.");
    init(Book::codebook(), BlockSize);
  }
  /// A static codebook with a run-time block size (BlockSize = kRuntimeGroupSize).
  explicit CodebookFakeQuantizer(std::int64_t block_size) {
    static_assert(!kRuntimeBook,
                  "CodebookFakeQuantizer: a RuntimeCodebook quantizer needs its fq::Codebook at "
                  "construction.");
    init(Book::codebook(), block_size);
  }
  /// A run-time codebook (Book = RuntimeCodebook); block_size as BlockSize says.
  explicit CodebookFakeQuantizer(Codebook book, std::int64_t block_size = BlockSize) {
    static_assert(kRuntimeBook,
                  "CodebookFakeQuantizer: only a RuntimeCodebook quantizer takes an fq::Codebook; "
                  "use fq::CodebookFakeQuantizer<fq::RuntimeCodebook, ...>.");
    init(std::move(book), block_size);
  }

  const Codebook& codebook() const noexcept { return book_; }
  /// The block size (fq::kWholeAxisGroup: one block per row).
  std::int64_t block_size() const noexcept { return block_size_; }
  /// True while the block absmax values are recomputed at every forward.
  bool dynamic() const noexcept { return dynamic_; }
  /// The block absmax values (row-major [rows, blocks per row]) of the last forward, or the
  /// frozen ones.
  const std::vector<float>& scale() const noexcept { return scales_; }
  /// Whether layout() is known (after a forward, or set_scales with a shape).
  bool has_layout() const noexcept { return has_layout_; }
  const GroupLayout& layout() const noexcept { return layout_; }

  /// Freezes the given block absmax values (each finite and > 0, else kInvalidScale), for any
  /// x with that many blocks (the first forward fixes the layout).
  void set_scales(const float* amax, std::int64_t count) {
    constexpr const char* kWhere = "CodebookFakeQuantizer::set_scales";
    FQ_CHECK(count >= 0, ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": negative count ", count));
    for (std::int64_t b = 0; b < count; ++b) {
      FQ_CHECK(std::isfinite(amax[b]) && amax[b] > 0.0f, ErrorCode::kInvalidScale,
               detail::msg(kWhere, ": block ", b, " has amax ", amax[b],
                           "; a zero or negative block amax (or NaN/Inf) is not a valid scale"));
    }
    scales_.assign(amax, amax + count);
    dynamic_ = false;
    has_layout_ = false;
  }
  void set_scales(const std::vector<float>& amax) {
    set_scales(amax.data(), static_cast<std::int64_t>(amax.size()));
  }
  /// Freezes block absmax values for x of `shape` (count must be its block count:
  /// kParamCountMismatch).
  void set_scales(const std::vector<float>& amax, const std::vector<std::int64_t>& shape) {
    constexpr const char* kWhere = "CodebookFakeQuantizer::set_scales";
    const GroupLayout L = detail::make_group_layout(shape.data(), static_cast<int>(shape.size()),
                                                    -1, block_size_, Tail, kWhere);
    FQ_CHECK(
        static_cast<std::int64_t>(amax.size()) == L.groups(), ErrorCode::kParamCountMismatch,
        detail::msg(kWhere, ": ", amax.size(), " block amax values for ", L.groups(), " blocks"));
    set_scales(amax);
    layout_ = L;
    has_layout_ = true;
  }
  /// Keeps the last forward's block absmax values and layout (kInvalidState before any
  /// forward; kInvalidScale if a block was all zero: its amax 0 is not a scale).
  void freeze() {
    FQ_CHECK(has_layout_, ErrorCode::kInvalidState,
             "CodebookFakeQuantizer::freeze: no forward has computed block scales yet");
    const GroupLayout L = layout_;
    set_scales(std::vector<float>(scales_));
    layout_ = L;
    has_layout_ = true;
  }
  /// Back to dynamic absmax.
  void unfreeze() noexcept { dynamic_ = true; }

  /// The checkpoint state (base/state.hpp): the codebook and block size (must match), the
  /// mode, the layout and the block absmax values of the last forward or the frozen ones.
  template <class V>
  void visit_state(V& v) {
    v.kind("codebook_fake_quantizer");
    v.config_array("levels", book_.levels().data(), book_.levels().size());
    v.config_array("thresholds", book_.thresholds().data(), book_.thresholds().size());
    v.config("block_size", block_size_);
    v.state("dynamic", dynamic_);
    v.state("has_layout", has_layout_);
    detail::visit_group_layout_state(v, "layout", layout_);
    v.state_vector("scale", scales_, state_non_negative(), StateSize{});
  }

  /// y = fake quant of x (contiguous, rank >= 1; y may be x); the STE mask to `mask`.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask = nullptr,
               Isa path = Isa::kAuto) {
    constexpr const char* kWhere = "CodebookFakeQuantizer::forward";
    const GroupLayout L = codebook_block_layout(x, block_size_, Tail, kWhere);
    if (dynamic_) {
      scales_.resize(static_cast<std::size_t>(L.groups()));
    } else if (has_layout_) {
      FQ_CHECK(
          L == layout_, ErrorCode::kShapeMismatch,
          detail::msg(kWhere, ": x has ", L.outer, " rows of ", L.axis_len, " (blocks of ",
                      L.group_size, "), the frozen scales are for ", layout_.outer, " rows of ",
                      layout_.axis_len, "; unfreeze() or set_scales for this shape"));
    }
    FQ_CHECK(
        static_cast<std::int64_t>(scales_.size()) == L.groups(), ErrorCode::kShapeMismatch,
        detail::msg(kWhere, ": x has ", L.groups(), " blocks, the frozen scales ", scales_.size()));
    codebook_fake_quantize_blocks<Arch>(x, y, mask, book_, L, scales_.data(), dynamic_, path);
    layout_ = L;
    has_layout_ = true;
  }

  /// dx = dy * mask (STE; dx may be dy).
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> dy, const Mask& mask, TensorView<float> dx,
                Isa path = Isa::kAuto) const {
    fake_quantize_backward<MaskedSte, Arch>(dy, mask, dx, path);
  }

 private:
  void init(Codebook book, std::int64_t block_size) {
    FQ_CHECK(block_size > 0 || block_size == kWholeAxisGroup, ErrorCode::kInvalidArgument,
             detail::msg("CodebookFakeQuantizer: the block size must be > 0 (or "
                         "fq::kWholeAxisGroup), got ",
                         block_size));
    FQ_CHECK(BlockSize == kRuntimeGroupSize || block_size == BlockSize, ErrorCode::kInvalidArgument,
             detail::msg("CodebookFakeQuantizer: block size ", block_size,
                         " differs from the compile-time BlockSize ", BlockSize));
    book_ = std::move(book);
    block_size_ = block_size;
  }

  Codebook book_ = Codebook::nf4();
  std::int64_t block_size_ = 64;
  std::vector<float> scales_;
  GroupLayout layout_;
  bool has_layout_ = false;
  bool dynamic_ = true;
};

/// QLoRA NF4: absmax per block of 64 (bitsandbytes' default blocksize), exact nearest level.
using Nf4Block64 = CodebookFakeQuantizer<Nf4, 64>;
/// NF4 with blocks of 32.
using Nf4Block32 = CodebookFakeQuantizer<Nf4, 32>;
/// NF4, blocks of 64, with bitsandbytes' dQuantizeNF4 decision constants (bit-exact with it).
using Nf4Block64Bitsandbytes = CodebookFakeQuantizer<Nf4Bitsandbytes, 64>;
/// Signed powers of two with zero (0, +-1, +-1/2, ..., +-1/64: 15 levels, a 4-bit code),
/// absmax per block of 64.
using Pow2Block64 = CodebookFakeQuantizer<Pow2Signed<7>, 64>;
/// A run-time codebook and block size: CodebookBlock q(fq::Codebook{...}, 64).
using CodebookBlock = CodebookFakeQuantizer<RuntimeCodebook, kRuntimeGroupSize>;

}  // namespace fq

#endif  // FQ_QUANTIZER_CODEBOOK_QUANTIZER_HPP_
