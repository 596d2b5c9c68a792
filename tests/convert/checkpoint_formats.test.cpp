// SPDX-License-Identifier: MIT
// Checkpoints of the transformer layers and the format quantizers (group-wise, per token,
// MX, NVFP4, FP8, NF4, Switchable, LSQ groups, group observers): a load restores exactly what
// was saved (the same bytes again, the same outputs), a ViT QAT run resumed from a checkpoint
// continues bit for bit, and mismatched or damaged state is refused or caught before use.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/layers/recipe.hpp>
#include <fakequant/layers/vit.hpp>
#include <fakequant/learnable/lsq_group.hpp>
#include <fakequant/observer/group_observer.hpp>
#include <fakequant/observer/switchable.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/quantizer/codebook_quantizer.hpp>
#include <fakequant/quantizer/fp_quantizer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/quantizer/mx_quantizer.hpp>
#include <fakequant/quantizer/nvfp4_quantizer.hpp>

#include "checkpoint_test_util.hpp"
#include "layers/vit_test_util.hpp"
#include "test_util.hpp"

// A named namespace: the unity build puts this file in one source with other tests.
namespace fq_checkpoint_formats_test {

using fq::Tape;
using fq::Var;
using fq_checkpoint_util::float_bits;

std::vector<float> normal(std::size_t n, std::uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

constexpr std::int64_t kRows = 4, kCols = 64;
using AffineInt4Group32 =
    fq::GroupFakeQuantizer<fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<32>>>;

template <class Q>
std::vector<float> run(Q& q, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  q.forward(fq::TensorView<const float>(x.data(), {kRows, kCols}),
            fq::TensorView<float>(y.data(), {kRows, kCols}));
  return y;
}

TEMPLATE_TEST_CASE("checkpoint: format quantizers restore their mode and scales exactly",
                   "[checkpoint][formats]", fq::Int4WeightGroup32Symmetric, AffineInt4Group32,
                   fq::Int8ActPerTokenDynamic, fq::MxFp4, fq::MxFp8E4M3, fq::NvFp4,
                   fq::NvFp4SingleLevel, fq::Fp8E4M3PerTensor, fq::Fp8E4M3PerChannel,
                   fq::Nf4Block64, fq::Switchable<fq::Int4WeightGroup32Symmetric>) {
  const std::vector<float> x1 = normal(kRows * kCols, 1), x2 = normal(kRows * kCols, 2, 3.0f);
  const bool frozen = GENERATE(false, true);
  TestType a;
  (void)run(a, x1);
  if (frozen) a.freeze();
  const std::vector<std::uint8_t> saved = fq::checkpoint_bytes(a);
  TestType b;
  (void)run(b, x2);  // other state, overwritten by the load
  REQUIRE(fq::checkpoint_bytes(b) != saved);
  fq::load_checkpoint_bytes(saved, b);
  CHECK(fq::checkpoint_bytes(b) == saved);
  CHECK(b.dynamic() == a.dynamic());
  if (!frozen) {  // the last forward's scales are kept: freeze() now keeps the same ones
    a.freeze();
    b.freeze();
  }
  // Frozen: x2 (another range) runs on the saved scales in both.
  CHECK(float_bits(run(b, x2)) == float_bits(run(a, x2)));
}

TEST_CASE("checkpoint: other formats, codebooks, block or group sizes are refused",
          "[checkpoint][formats]") {
  const std::vector<float> x = normal(kRows * kCols, 3);
  fq::MxFp4 mx4;
  (void)run(mx4, x);
  const std::vector<std::uint8_t> mx_bytes = fq::checkpoint_bytes(mx4);
  fq::MxFp8E4M3 mx8;
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(mx_bytes, mx8);
        }).find("'0.elem_max' is 6 in the checkpoint, 448 here") != std::string::npos);
  fq::CodebookBlock book_a(fq::Codebook({-1.0f, 0.0f, 1.0f}), 32);
  fq::CodebookBlock book_b(fq::Codebook({-1.0f, 0.25f, 1.0f}), 32);
  fq::CodebookBlock book_c(fq::Codebook({-1.0f, 0.0f, 1.0f}), 16);
  (void)run(book_a, x);
  const std::vector<std::uint8_t> book_bytes = fq::checkpoint_bytes(book_a);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(book_bytes, book_b);
        }).find("'0.levels'") != std::string::npos);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(book_bytes, book_c);
        }).find("'0.block_size' is 32 in the checkpoint, 16 here") != std::string::npos);
  fq::CodebookBlock book_d(fq::Codebook({-1.0f, 0.0f, 1.0f}), 32);
  fq::load_checkpoint_bytes(book_bytes, book_d);
  CHECK(float_bits(run(book_d, x)) == float_bits(run(book_a, x)));
  fq::Int4WeightGroup32Symmetric g32;
  fq::Int4WeightGroup64Symmetric g64;
  (void)run(g32, x);
  const std::vector<std::uint8_t> g_bytes = fq::checkpoint_bytes(g32);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(g_bytes, g64);
        }).find("'0.group_size' is 32 in the checkpoint, 64 here") != std::string::npos);
}

TEST_CASE("checkpoint: a format quantizer whose last forward saw NaN is not saved",
          "[checkpoint][formats]") {
  std::vector<float> x = normal(kRows * kCols, 4);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  fq::MxFp4 mx;
  (void)run(mx, x);
  CHECK(fq_test::error_code_of([&] { (void)fq::checkpoint_bytes(mx); }) ==
        fq::ErrorCode::kInvalidArgument);
  fq::NvFp4 nv;
  (void)run(nv, x);
  CHECK(fq_test::error_code_of([&] { (void)fq::checkpoint_bytes(nv); }) ==
        fq::ErrorCode::kNonFiniteInput);
  x[5] = 0.5f;  // finite again: saved
  (void)run(mx, x);
  CHECK_NOTHROW(fq::checkpoint_bytes(mx));
}

TEST_CASE("checkpoint: a restored layout that is no real layout fails at the forward",
          "[checkpoint][formats]") {
  const std::vector<float> x = normal(kRows * kCols, 5);
  fq::MxFp4 a;
  (void)run(a, x);
  a.freeze();
  std::vector<std::uint8_t> bytes = fq::checkpoint_bytes(a);
  // groups_per_axis (the layout's fifth int64) from 2 to 3: valid values, a layout no tensor
  // has; the sealed file loads, and the frozen forward refuses every input.
  const std::size_t off = fq_checkpoint_util::data_offset(bytes, "0.layout") + 4 * 8;
  const std::int64_t three = 3;
  std::memcpy(bytes.data() + off, &three, 8);
  fq_checkpoint_util::reseal(bytes);
  fq::MxFp4 b;
  fq::load_checkpoint_bytes(bytes, b);
  CHECK(fq_test::error_code_of([&] { (void)run(b, x); }) == fq::ErrorCode::kShapeMismatch);
  // A group observer's restored min/max that disagree with its layout: calculate_qparams
  // refuses them (kInvalidState) instead of reading past the end.
  fq::GroupMinMaxObserver obs(32);
  obs.observe(fq::TensorView<const float>(x.data(), {kRows, kCols}));
  std::vector<std::uint8_t> ob = fq::checkpoint_bytes(obs);
  const std::size_t lay = fq_checkpoint_util::data_offset(ob, "0.layout");
  const std::int64_t ninety_six = 96;
  std::memcpy(ob.data() + lay + 1 * 8, &ninety_six, 8);  // axis_len
  std::memcpy(ob.data() + lay + 4 * 8, &three, 8);       // groups_per_axis
  fq_checkpoint_util::reseal(ob);
  fq::GroupMinMaxObserver obs2(32);
  fq::load_checkpoint_bytes(ob, obs2);
  CHECK(fq_test::error_code_of([&] {
          (void)obs2.calculate_qparams<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32>>>();
        }) == fq::ErrorCode::kInvalidState);
}

TEST_CASE("checkpoint: group observers and LSQ groups round-trip", "[checkpoint][formats]") {
  using Scheme = fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32>>;
  const std::vector<float> x = normal(kRows * kCols, 6);
  const fq::TensorView<const float> xv(x.data(), {kRows, kCols});
  fq::GroupMinMaxObserver mm(32, -1, fq::GroupTail::kMustDivide, fq::GroupObserve::kRunning);
  fq::GroupMseObserver mse(32);
  mm.observe(xv);
  mse.observe(xv);
  const std::vector<std::uint8_t> saved = fq::checkpoint_bytes(mm, mse);
  fq::GroupMinMaxObserver mm2(32, -1, fq::GroupTail::kMustDivide, fq::GroupObserve::kRunning);
  fq::GroupMseObserver mse2(32);
  fq::load_checkpoint_bytes(saved, mm2, mse2);
  CHECK(fq::checkpoint_bytes(mm2, mse2) == saved);
  CHECK(float_bits(mm2.calculate_qparams<Scheme>().scale) ==
        float_bits(mm.calculate_qparams<Scheme>().scale));
  CHECK(float_bits(mse2.calculate_qparams<Scheme>().scale) ==
        float_bits(mse.calculate_qparams<Scheme>().scale));
  fq::GroupMinMaxObserver last(32);  // another update rule
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(saved, last, mse2);
        }).find("'0.update'") != std::string::npos);

  fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>> lsq(fq::Int4::value(), {kRows, kCols});
  lsq.init_from(xv);
  fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>> lsq2(fq::Int4::value(), {kRows, kCols});
  fq::load_checkpoint_bytes(fq::checkpoint_bytes(lsq), lsq2);
  CHECK(float_bits(std::as_const(lsq2).scale_param()) ==
        float_bits(std::as_const(lsq).scale_param()));
  CHECK(float_bits(run(lsq2, x)) == float_bits(run(lsq, x)));
  fq::LsqGroupQuantizer<fq::LinearLsqGroup<32>> other_shape(fq::Int4::value(), {kRows, 2 * kCols});
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(fq::checkpoint_bytes(lsq), other_shape);
        }).find("'0.layout'") != std::string::npos);
}

// The layer tests' small ViT, with dropout (a resumed run must draw the same masks).
fq::VitOptions small_vit() {
  fq::VitOptions vo = fq_test::small_vit();
  vo.block.dropout = 0.1f;
  vo.seed = 11;
  return vo;
}
using fq_test::MixedVit;

// A ViT, its AdamW and a fixed stream of batches.
struct VitRun {
  explicit VitRun(std::uint32_t seed) : rng(seed), vit(small_vit(), rng), opt(vit.parameters()) {}
  void steps(int n) {
    for (int i = 0; i < n; ++i, ++step) {
      const std::vector<float> x = normal(3 * 2 * 64, 100 + static_cast<std::uint32_t>(step));
      const std::int32_t labels[3] = {step % 4, (step + 1) % 4, (step + 3) % 4};
      Tape tape;
      const Var loss = fq::ops::softmax_cross_entropy(
          tape, vit.forward(tape, tape.constant(x.data(), {3, 2, 8, 8})), labels);
      opt.zero_grad();
      tape.backward(loss);
      opt.step();
    }
  }
  std::vector<std::uint8_t> state() { return fq::checkpoint_bytes(vit, opt); }
  std::mt19937 rng;
  MixedVit vit;
  fq::optim::AdamW opt;
  int step = 0;
};

TEST_CASE("checkpoint: a ViT QAT run (W8A8 ends, W4A8 blocks, dropout) resumes bit for bit",
          "[checkpoint][transformer]") {
  VitRun full(1);
  full.steps(3);
  const std::vector<std::uint8_t> at3 = full.state();
  full.steps(3);
  VitRun resumed(2);  // other initial weights, all overwritten
  resumed.steps(1);
  fq::load_checkpoint_bytes(at3, resumed.vit, resumed.opt);
  CHECK(resumed.state() == at3);
  resumed.step = 3;
  resumed.steps(3);
  CHECK(resumed.state() == full.state());
  // The names say where an entry is.
  bool named = false;
  for (const auto& e : fq::detail::parse_checkpoint(at3, "test"))
    named = named || e.name == "0.block1.attention.qkv.weight_quantizer.scale";
  CHECK(named);
  // Another depth or dropout is refused.
  fq::VitOptions deeper = small_vit();
  deeper.depth = 3;
  std::mt19937 rng(3);
  MixedVit other(deeper, rng);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(at3, other);
        }).find("'0.depth' is 2 in the checkpoint, 3 here") != std::string::npos);
  fq::VitOptions no_drop = small_vit();
  no_drop.block.dropout = 0.0f;
  MixedVit other2(no_drop, rng);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(at3, other2);
        }).find("'0.block0.dropout'") != std::string::npos);
}

}  // namespace fq_checkpoint_formats_test
