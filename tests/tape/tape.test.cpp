// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/ops.hpp>
#include <fakequant/tape/arena.hpp>
#include <fakequant/tape/custom_op.hpp>
#include <fakequant/tape/tape.hpp>

#include "test_util.hpp"

// The out-of-memory test asks the heap for 2^50 bytes: under AddressSanitizer that must return
// null (as glibc does) instead of aborting.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FQ_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(FQ_TEST_ASAN)
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

using fq::Tape;
using fq::Var;

TEST_CASE("Arena: 64-byte alignment, rewind, and no growth once a step's size is known", "[tape]") {
  fq::Arena a(256);
  for (std::size_t n : {1u, 3u, 64u, 100u, 1000u}) {
    void* p = a.allocate(n);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
  }
  CHECK(a.block_count() > 1);  // 1000 bytes did not fit in a 256-byte block
  const std::size_t step = a.bytes_in_use(), blocks = a.block_count();
  std::vector<void*> first;
  a.reset();
  CHECK(a.block_count() == blocks);  // kept: the next step reuses the memory it touched
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<void*> got;
    for (std::size_t n : {1u, 3u, 64u, 100u, 1000u}) got.push_back(a.allocate(n));
    if (rep == 0) first = got;
    CHECK(got == first);  // the same requests get the same addresses
    CHECK(a.bytes_in_use() == step);
    CHECK(a.block_count() == blocks);
    a.reset();
  }
  const auto m = a.mark();
  float* f = a.allocate_zeroed<float>(10);
  CHECK(f[9] == 0.0f);
  a.rewind(m);
  CHECK(a.allocate_array<float>(10) == f);  // the rewound memory is handed out again
}

TEST_CASE("Arena: a block of 2 MiB or more is 2 MiB-aligned on Linux (huge pages)", "[tape]") {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  fq::Arena a(kHuge + 100);  // rounded up to 4 MiB: a second such request fits the same block
  char* p = static_cast<char*>(a.allocate(kHuge));
  char* q = static_cast<char*>(a.allocate(kHuge));
#if defined(__linux__)
  CHECK(reinterpret_cast<std::uintptr_t>(p) % kHuge == 0);
  CHECK(q == p + kHuge);
  CHECK(a.block_count() == 1);
#else
  CHECK(a.block_count() == 2);
#endif
  p[0] = q[kHuge - 1] = 1;  // all of it is usable
  fq::Arena small(1000);    // small blocks stay 64-byte aligned, unrounded
  CHECK(reinterpret_cast<std::uintptr_t>(small.allocate(10)) % 64 == 0);
}

TEST_CASE("Tape: backward accumulates into leaves; clear() reuses the arena", "[tape]") {
  std::vector<float> w = {1, 2, 3, 4, 5, 6}, dw(6, 0.0f), x = {1, -1, 2};
  Tape tape;
  std::size_t first_peak = 0, first_blocks = 0;
  for (int step = 0; step < 3; ++step) {
    Var xv = tape.constant(x.data(), {1, 3});
    Var wv = tape.leaf(w.data(), dw.data(), {2, 3});
    Var loss = fq::ops::mean(tape, fq::ops::linear(tape, xv, wv));
    CHECK(tape.node_count() == 2);
    CHECK(loss.value()[0] == Approx(((1 - 2 + 6) + (4 - 5 + 12)) / 2.0));
    tape.backward(loss);
    tape.clear();
    CHECK(tape.node_count() == 0);
    if (step == 0) first_peak = tape.arena().peak_bytes();
    if (step == 0) first_blocks = tape.arena().block_count();
    CHECK(tape.arena().peak_bytes() == first_peak);
    CHECK(tape.arena().block_count() == first_blocks);
  }
  // d mean / d w[o, i] = x[i] / 2, accumulated over three steps.
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 3; ++i)
      CHECK(dw[std::size_t(o * 3 + i)] == Approx(3 * x[std::size_t(i)] / 2));
}

TEST_CASE("Tape: custom_op registers a user's forward and backward in one call", "[tape]") {
  // A user kernel: y = x^3 element-wise, dy/dx = 3x^2.
  std::vector<float> x = {0.5f, -1.0f, 2.0f}, dx(3, 0.0f);
  Tape tape;
  Var xv = tape.leaf(x.data(), dx.data(), {3});
  Var y = fq::custom_op(
      tape, {xv}, xv.shape(),
      [&](float* out) {
        for (int i = 0; i < 3; ++i) out[i] = xv.value()[i] * xv.value()[i] * xv.value()[i];
      },
      [xv](const float*, const float* dy) {
        for (int i = 0; i < 3; ++i) xv.grad()[i] += 3 * xv.value()[i] * xv.value()[i] * dy[i];
      });
  CHECK(y.value()[2] == 8.0f);
  tape.backward(fq::ops::mean(tape, y));
  for (int i = 0; i < 3; ++i)
    CHECK(dx[std::size_t(i)] == Approx(x[std::size_t(i)] * x[std::size_t(i)]));
}

TEST_CASE("Tape: nested scopes and NoGradGuard", "[tape]") {
  std::vector<float> a = {1, 2, 3, 4}, da(4, 0.0f);
  Tape tape;
  Var av = tape.leaf(a.data(), da.data(), {4});
  Var outer = fq::ops::relu(tape, av);
  const std::size_t nodes = tape.node_count(), bytes = tape.arena().bytes_in_use();
  {
    Tape::Scope scope(tape);
    scope.backward(fq::ops::mean(tape, av));  // runs only the scope's own closure
    CHECK(tape.node_count() == nodes + 1);
  }
  CHECK(tape.node_count() == nodes);
  CHECK(tape.arena().bytes_in_use() == bytes);
  for (float g : da) CHECK(g == Approx(0.25f));
  CHECK(outer.grad()[0] == 0.0f);  // the outer closure did not run
  {
    fq::NoGradGuard guard(tape);
    Var y = fq::ops::relu(tape, av);
    CHECK_FALSE(y.requires_grad());
    CHECK(tape.node_count() == nodes);
  }
  CHECK(tape.recording());
}

TEST_CASE("Tape: bad use is reported", "[tape]") {
  std::vector<float> a = {1, 2}, da(2);
  Tape tape, other;
  Var av = tape.leaf(a.data(), da.data(), {2});
  CHECK_THROWS_WITH(tape.backward(av), Catch::Contains("must be a scalar"));
  CHECK_THROWS_WITH(other.backward(fq::ops::mean(tape, av)), Catch::Contains("another tape"));
  CHECK_THROWS_WITH(fq::ops::add(other, av, av), Catch::Contains("another tape"));
  CHECK_THROWS_WITH(av.reshape({3}), Catch::Contains("elements"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> bad = {nan, 1.0f}, dbad(2);
  Var loss = fq::ops::mean(tape, tape.leaf(bad.data(), dbad.data(), {2}));
  CHECK_THROWS_WITH(tape.backward(loss), Catch::Contains("loss is nan"));
  const float c = 1.0f;
  CHECK_THROWS_WITH(tape.backward(fq::ops::mean(tape, tape.constant(&c, {1}))),
                    Catch::Contains("does not depend"));
}

TEST_CASE("Tape: independent tapes in different threads", "[tape]") {
  auto run = [](float scale, float* out) {
    std::vector<float> w(16, scale), dw(16, 0.0f);
    Tape tape;
    for (int i = 0; i < 50; ++i) {
      tape.backward(fq::ops::mean(tape, fq::ops::relu(tape, tape.leaf(w.data(), dw.data(), {16}))));
      tape.clear();
    }
    *out = dw[0];
  };
  float r1 = 0, r2 = 0;
  std::thread t1(run, 1.0f, &r1), t2(run, -1.0f, &r2);
  t1.join();
  t2.join();
  CHECK(r1 == Approx(50.0f / 16));
  CHECK(r2 == 0.0f);
}

TEST_CASE("Tape: backward twice is refused; gradients are not accumulated again", "[tape]") {
  std::vector<float> w = {1, -2, 3}, dw(3, 0.0f);
  Tape tape;
  Var wv = tape.leaf(w.data(), dw.data(), {3});
  Var loss = fq::ops::mean(tape, fq::ops::relu(tape, wv));
  tape.backward(loss);
  const std::vector<float> once = dw;
  CHECK(fq_test::error_code_of([&] { tape.backward(loss); }) == fq::ErrorCode::kInvalidState);
  CHECK_THROWS_WITH(tape.backward(loss), Catch::Contains("called twice"));
  CHECK(dw == once);
  // tape.backward(loss2) would run the first loss's closures again, too.
  Var loss2 = fq::ops::mean(tape, fq::ops::add(tape, fq::ops::relu(tape, wv), wv));
  CHECK(fq_test::error_code_of([&] { tape.backward(loss2); }) == fq::ErrorCode::kInvalidState);
  CHECK(dw == once);
  // ... but a Scope over only the new closures may run them (they never ran).
  {
    Tape::Scope scope(tape);
    scope.backward(fq::ops::mean(tape, wv));
    CHECK(fq_test::error_code_of([&] { scope.backward(fq::ops::mean(tape, wv)); }) ==
          fq::ErrorCode::kInvalidState);
  }
  CHECK(dw[0] == Approx(once[0] + 1.0f / 3));
  // The next step (after clear) runs normally.
  tape.clear();
  std::fill(dw.begin(), dw.end(), 0.0f);
  tape.backward(fq::ops::mean(tape, fq::ops::relu(tape, tape.leaf(w.data(), dw.data(), {3}))));
  CHECK(dw == once);
}

TEST_CASE("Tape: variables freed by clear() or by the end of a Scope are refused", "[tape]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  std::vector<float> w = {1, -2, 3, 4}, dw(4, 0.0f);
  Tape tape;
  Var wv = tape.leaf(w.data(), dw.data(), {4});  // the caller's memory: valid across clear()
  Var y = fq::ops::relu(tape, wv);
  Var loss = fq::ops::mean(tape, y);
  tape.clear();
  CHECK(error_code_of([&] { fq::ops::relu(tape, y); }) == ErrorCode::kInvalidState);
  CHECK(error_code_of([&] { fq::ops::add(tape, wv, y); }) == ErrorCode::kInvalidState);
  CHECK(error_code_of([&] { tape.backward(loss); }) == ErrorCode::kInvalidState);
  CHECK(error_code_of([&] {
          fq::custom_op(
              tape, {y}, {4}, [](float*) {}, [](const float*, const float*) {});
        }) == ErrorCode::kInvalidState);
  CHECK_THROWS_WITH(fq::ops::relu(tape, y), Catch::Contains("freed by Tape::clear()"));
  // Leaves and constants stay valid; the new step's variables are valid.
  Var y2 = fq::ops::relu(tape, wv);
  Var outer = fq::ops::mean(tape, y2);
  Var inner;
  {
    Tape::Scope scope(tape);
    inner = fq::ops::relu(tape, y2);  // outer variables are usable inside the scope
    CHECK(fq::ops::mean(tape, inner).numel() == 1);
  }
  CHECK(error_code_of([&] { fq::ops::relu(tape, inner); }) == ErrorCode::kInvalidState);
  tape.backward(outer);  // outer variables survive the scope
  CHECK(dw[0] == Approx(0.25f));
  // A clear() inside a scope ends the scope's generation too.
  {
    Tape::Scope scope(tape);
    Var s = fq::ops::relu(tape, wv);
    tape.clear();
    CHECK(error_code_of([&] { fq::ops::relu(tape, s); }) == ErrorCode::kInvalidState);
  }
  CHECK(tape.node_count() == 0);
  CHECK(fq::ops::relu(tape, wv).numel() == 4);
}

TEST_CASE("Tape and Arena: sizes that overflow are refused", "[tape]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  const std::int64_t big = std::int64_t{1} << 40;
  CHECK(error_code_of([&] { fq::Shape s{big, big}; }) == ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] { fq::Shape s{0, big, big}; }) == ErrorCode::kOutOfMemory);
  Tape tape;
  // 2^62 floats: the element count fits int64, the bytes do not.
  CHECK(error_code_of([&] {
          tape.variable({std::int64_t{1} << 31, std::int64_t{1} << 31});
        }) == ErrorCode::kOutOfMemory);
  fq::Arena arena(256);
  // A request near SIZE_MAX must not wrap to a small block when rounded up.
  CHECK(error_code_of([&] { arena.allocate(std::numeric_limits<std::size_t>::max() - 10); }) ==
        ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] {
          arena.allocate_array<double>(std::numeric_limits<std::size_t>::max() / 4);
        }) == ErrorCode::kOutOfMemory);
  // A request the heap refuses (above the 47-bit address space) is out of memory, too.
  CHECK(error_code_of([&] { arena.allocate(std::size_t{1} << 50); }) == ErrorCode::kOutOfMemory);
  CHECK(arena.block_count() == 0);
  CHECK(error_code_of([&] { fq::Arena a2(std::numeric_limits<std::size_t>::max()); }) ==
        ErrorCode::kOutOfMemory);
}

namespace {
// Fills the memory the tape's next variables will take with NaN (the arena reuses it).
void poison(Tape& t, std::size_t floats) {
  std::fill_n(t.scratch<float>(floats), floats, std::numeric_limits<float>::quiet_NaN());
  t.clear();
}
bool all_equal(const float* p, std::int64_t n, float v) {
  return std::all_of(p, p + n, [v](float e) { return e == v; });
}
}  // namespace

TEST_CASE("Tape: a gradient reads as zeros until written; its first writer stores",
          "[tape][first_writer]") {
  Tape t;
  poison(t, 4096);
  Var v = t.variable({100});
  CHECK(all_equal(v.grad(), 100, 0.0f));  // zero-filled by the first read
  CHECK_FALSE(v.claim_grad().overwrite);  // already written (with zeros)

  Var u = t.variable({10, 10});
  const fq::GradWrite c = u.claim_grad();
  CHECK(c.overwrite);
  REQUIRE(c.data != nullptr);
  std::fill_n(c.data, 100, 5.0f);
  CHECK(all_equal(u.grad(), 100, 5.0f));  // no zeros written after the claim
  CHECK_FALSE(u.claim_grad().overwrite);  // one first writer only
  CHECK(u.claim_grad().data == c.data);

  // A reshape is the same gradient: one claim between them.
  Var w = t.variable({4, 5});
  Var r = w.reshape({20});
  CHECK(w.shares_grad(r));
  CHECK_FALSE(w.shares_grad(u));
  CHECK(r.claim_grad().overwrite);
  CHECK_FALSE(w.claim_grad().overwrite);

  // The caller's memory (a leaf) is always added to; no gradient: nothing to claim.
  std::vector<float> val(8, 1.0f), g(8, 3.0f);
  Var leaf = t.leaf(val.data(), g.data(), {8});
  CHECK_FALSE(leaf.shares_grad(leaf));
  CHECK_FALSE(leaf.claim_grad().overwrite);
  CHECK(leaf.claim_grad().data == g.data());
  CHECK(g[0] == 3.0f);
  Var none = t.variable({8}, false);
  CHECK(none.claim_grad().data == nullptr);
  CHECK_FALSE(none.claim_grad().overwrite);
  {
    fq::NoGradGuard ng(t);
    CHECK(t.variable({8}).claim_grad().data == nullptr);
  }
}

TEST_CASE("Tape: a gradient zero-filled from several threads at once", "[tape][first_writer]") {
  Tape t;
  constexpr std::int64_t kN = std::int64_t{1} << 20;
  for (int round = 0; round < 4; ++round) {
    poison(t, static_cast<std::size_t>(kN) + 64);
    Var v = t.variable({kN});
    std::vector<int> ok(4, 0);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ok.size(); ++i)
      threads.emplace_back([&v, &ok, i] { ok[i] = all_equal(v.grad(), kN, 0.0f) ? 1 : 0; });
    for (std::thread& th : threads) th.join();
    CHECK(std::count(ok.begin(), ok.end(), 1) == 4);
    t.clear();
  }
}

TEST_CASE("Tape: two consumers of one variable, the storing one first or second",
          "[tape][first_writer]") {
  // h = copy(x); loss = Σ linear(h, w) + Σ 2·h, recorded in both orders. linear stores dh when
  // its closure runs first (it was recorded last) and adds when the other ran first.
  const std::int64_t rows = 4, in = 6, out = 3;
  std::vector<float> x(static_cast<std::size_t>(rows * in)), w(static_cast<std::size_t>(out * in));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.125f * static_cast<float>(i % 5) - 0.25f;
  std::vector<float> expect(x.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < in; ++j) {
      float s = 0.0f;
      for (std::int64_t o = 0; o < out; ++o) s += w[static_cast<std::size_t>(o * in + j)];
      expect[static_cast<std::size_t>(r * in + j)] = s + 2.0f;
    }
  auto sum = [](Tape& t, const Var& y, float k) {
    return fq::custom_op(
        t, {y}, {}, [&](float* l) { *l = k * y.array().sum(); },
        [y, k](const float*, const float* dl) { y.grad_array() += k * dl[0]; });
  };
  for (bool linear_last : {false, true}) {
    INFO("linear recorded last: " << linear_last);
    Tape t;
    poison(t, 1 << 14);
    std::vector<float> dx(x.size(), 0.0f);
    const Var xl = t.leaf(x.data(), dx.data(), {rows, in});
    const Var wl = t.leaf(w.data(), nullptr, {out, in});
    const Var h = fq::custom_op(
        t, {xl}, xl.shape(), [&](float* y) { std::copy_n(x.data(), x.size(), y); },
        [xl](const float*, const float* dy) {
          xl.grad_array() += Eigen::Map<const Eigen::ArrayXf>(dy, xl.numel());
        });
    Var a, b;
    if (linear_last) {
      b = sum(t, h, 2.0f);
      a = sum(t, fq::ops::linear(t, h, wl), 1.0f);
    } else {
      a = sum(t, fq::ops::linear(t, h, wl), 1.0f);
      b = sum(t, h, 2.0f);
    }
    t.backward(fq::ops::add(t, a, b));
    for (std::size_t i = 0; i < dx.size(); ++i) CHECK(dx[i] == Approx(expect[i]).epsilon(1e-6));
  }
}
