// SPDX-License-Identifier: MIT
// Checkpoints: a run stopped after epoch k and resumed equals the uninterrupted run bit for
// bit; truncated, corrupted, foreign and mismatched checkpoints are refused with nothing
// loaded.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/layers/act_quant.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/norm.hpp>
#include <fakequant/layers/qconv2d.hpp>
#include <fakequant/layers/qconv_bn2d.hpp>
#include <fakequant/layers/qlinear.hpp>
#include <fakequant/learnable/pact.hpp>
#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/schedule/qat_schedule.hpp>

#include "checkpoint_test_util.hpp"
#include "test_util.hpp"

// A named namespace: the unity build puts this file in one source with other tests.
namespace fq_checkpoint_test {

using fq::Tape;
using fq::Var;
using fq_checkpoint_util::data_offset;
using fq_checkpoint_util::float_bits;
using fq_checkpoint_util::reseal;
using LsqWeights = fq::LearnableFakeQuant<fq::LsqScheme<>, fq::Int8>;

constexpr std::int64_t kBatch = 6, kSide = 6, kClasses = 3, kStepsPerEpoch = 5;

// QConvBn2d (FakeQuantize: per-channel min-max weights, moving-average activations) ->
// QLinear with LSQ weights and a PACT output -> QLinear (FakeQuantize).
struct Net {
  explicit Net(std::uint32_t seed)
      : rng(seed),
        conv(1, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(4 * kSide * kSide, 8, rng),
        fc2(8, kClasses, rng) {}
  Var forward(Tape& t, const Var& x) {
    const Var h = conv.forward(t, x);
    return fc2.forward(t, fc1.forward(t, h.reshape({x.shape()[0], 4 * kSide * kSide})));
  }
  template <class V>
  void visit_state(V& v) {
    v.child("conv", conv);
    v.child("fc1", fc1);
    v.child("fc2", fc2);
  }
  std::mt19937 rng;
  fq::QConvBn2d<> conv;
  fq::QLinear<LsqWeights, fq::Pact<8>> fc1;
  fq::QLinear<> fc2;
};

fq::optim::SgdOptions sgd_options() {
  fq::optim::SgdOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  return o;
}
fq::optim::AdamWOptions adamw_options() {
  fq::optim::AdamWOptions o;
  o.lr = 1e-2;
  return o;
}
fq::QatScheduleConfig schedule_config() {
  fq::QatScheduleConfig c;
  c.warmup = 1;
  c.fake_quant_start = 2;
  c.learning_start = 4;
  c.observer_freeze = 8;  // before the stop after epoch 2 (step 10)
  c.bn_freeze = 13;       // after it
  return c;
}

// The whole training state; objects built in place (the optimizers and the schedule keep
// pointers and references into the network).
struct Trainer {
  explicit Trainer(std::uint32_t seed)
      : net(seed),
        sgd(fq::optim::parameters_of(net.conv, net.fc2), sgd_options()),
        adamw(net.fc1.parameters(), adamw_options()),
        sgd_lr(0.05, 4 * kStepsPerEpoch, 1e-3, fq::optim::LinearWarmup{3, 0.5}),
        adamw_lr(1e-2, 7, 0.5),
        schedule(schedule_config()),
        data(seed + 100) {
    schedule.add(net.conv.weight_quantizer());
    schedule.add(net.conv.output_quantizer());
    schedule.add(net.fc1.weight_quantizer());
    schedule.add(net.fc2.weight_quantizer());
    schedule.add(net.fc2.output_quantizer());
    schedule.add_bn(net.conv);
  }
  void epoch() {
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<std::size_t>(kBatch * kSide * kSide));
    std::vector<std::int32_t> labels(static_cast<std::size_t>(kBatch));
    for (std::int64_t s = 0; s < kStepsPerEpoch; ++s, ++progress.step) {
      schedule.advance();
      sgd.set_lr(sgd_lr.lr_at(progress.step));
      adamw.set_lr(adamw_lr.lr_at(progress.step));
      for (std::size_t i = 0; i < labels.size(); ++i) {
        labels[i] = static_cast<std::int32_t>(data() % kClasses);
        for (std::int64_t k = 0; k < kSide * kSide; ++k)
          x[i * kSide * kSide + static_cast<std::size_t>(k)] =
              nd(data) + (k % kClasses == labels[i] ? 1.0f : 0.0f);
      }
      Tape t;
      const Var loss = fq::ops::softmax_cross_entropy(
          t, net.forward(t, t.constant(x.data(), {kBatch, 1, kSide, kSide})), labels.data());
      t.backward(loss);
      sgd.step();
      adamw.step();
      sgd.zero_grad();
      adamw.zero_grad();
    }
    ++progress.epoch;
  }
  std::vector<std::uint8_t> state() {
    fq::EngineState data_state(data);
    return fq::checkpoint_bytes(net, sgd, adamw, sgd_lr, adamw_lr, schedule, progress, data_state);
  }
  void save(const std::string& path) {
    fq::EngineState data_state(data);
    fq::save_checkpoint(path, net, sgd, adamw, sgd_lr, adamw_lr, schedule, progress, data_state);
  }
  void load(const std::string& path) {
    fq::EngineState data_state(data);
    fq::load_checkpoint(path, net, sgd, adamw, sgd_lr, adamw_lr, schedule, progress, data_state);
  }
  // Logits of a fixed evaluation batch (BN on running statistics).
  std::vector<float> eval() {
    std::mt19937 r(5);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<std::size_t>(kBatch * kSide * kSide));
    for (float& v : x) v = nd(r);
    net.conv.train(false);
    Tape t;
    const Var y = net.forward(t, t.constant(x.data(), {kBatch, 1, kSide, kSide}));
    net.conv.train(true);
    return std::vector<float>(y.value(), y.value() + y.numel());
  }

  Net net;
  fq::optim::Sgd sgd;
  fq::optim::AdamW adamw;
  fq::optim::CosineAnnealingLR sgd_lr;
  fq::optim::StepLR adamw_lr;
  fq::QatSchedule schedule;
  fq::TrainingProgress progress;
  std::mt19937 data;
};

// Every parameter value (layers and quantizers), bitwise.
std::vector<std::uint64_t> parameter_bits(Net& n) {
  std::vector<std::uint64_t> bits;
  for (const auto& p : fq::optim::parameters_of(n.conv, n.fc1, n.fc2))
    for (std::size_t i = 0; i < p.size; ++i) bits.push_back(fq_test::bits_of(p.value[i]));
  return bits;
}

// Runs f in a child process and returns the bytes it produced: the interrupted run and its
// resumption are separate processes, as for a program stopped and started again. (Within one
// process the runs agree too: checkpoint_formats.test.cpp resumes a ViT in the same process.)
template <class F>
std::vector<std::uint8_t> in_child(const std::string& out, F&& f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 0;
    try {
      const std::vector<std::uint8_t> bytes = f();
      std::FILE* file = std::fopen(out.c_str(), "wb");
      code = file != nullptr && (bytes.empty() ||
                                 std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size())
                 ? 0
                 : 3;
      if (file != nullptr) std::fclose(file);
    } catch (...) {
      code = 4;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const std::vector<std::uint8_t> bytes = fq::detail::read_file_bytes(out, "test");
  std::remove(out.c_str());
  return bytes;
}

// What a run ends with: its whole checkpoint, then the evaluation logits.
std::vector<std::uint8_t> outcome(Trainer& t) {
  std::vector<std::uint8_t> b = t.state();
  const std::vector<float> logits = t.eval();
  const auto* p = reinterpret_cast<const std::uint8_t*>(logits.data());
  b.insert(b.end(), p, p + logits.size() * sizeof(float));
  return b;
}

TEST_CASE("checkpoint: a run stopped after epoch 2 and resumed equals the uninterrupted run",
          "[checkpoint]") {
  const std::string path = "fq_checkpoint_resume.ckpt", full_out = "fq_checkpoint_full.out",
                    resumed_out = "fq_checkpoint_resumed.out";
  const std::vector<std::uint8_t> full = in_child(full_out, [] {
    Trainer t(1);
    for (int e = 0; e < 4; ++e) t.epoch();
    // The freeze points fell on both sides of the stop.
    if (t.net.conv.output_quantizer().observer_enabled() || !t.net.conv.bn_stats_frozen() ||
        !t.net.fc1.weight_quantizer().learning())
      throw 0;
    return outcome(t);
  });
  (void)in_child(resumed_out, [&] {
    Trainer t(1);
    t.epoch();
    t.epoch();
    t.save(path);
    return std::vector<std::uint8_t>{};
  });
  const std::vector<std::uint8_t> resumed = in_child(resumed_out, [&] {
    Trainer t(2);  // another initialization and data stream: the checkpoint replaces both
    const std::vector<std::uint64_t> before = parameter_bits(t.net);
    t.load(path);
    if (parameter_bits(t.net) == before || t.progress.epoch != 2 ||
        t.progress.step != 2 * kStepsPerEpoch ||
        t.schedule.current_step() != 2 * kStepsPerEpoch - 1)
      throw 0;
    t.epoch();
    t.epoch();
    return outcome(t);
  });
  std::remove(path.c_str());
  REQUIRE(full.size() == resumed.size());
  // Entry by entry (parameters, BN statistics, observers, quantizers, LSQ and PACT parameters,
  // switches, optimizer moments and steps, schedule position, data stream), bitwise.
  const std::size_t logits = static_cast<std::size_t>(kBatch * kClasses) * sizeof(float);
  const std::vector<std::uint8_t> fs(full.begin(),
                                     full.end() - static_cast<std::ptrdiff_t>(logits));
  const std::vector<std::uint8_t> rs(resumed.begin(),
                                     resumed.end() - static_cast<std::ptrdiff_t>(logits));
  const auto fe = fq::detail::parse_checkpoint(fs, "full");
  const auto re = fq::detail::parse_checkpoint(rs, "resumed");
  REQUIRE(fe.size() == re.size());
  REQUIRE(fe.size() > 100);
  for (std::size_t i = 0; i < fe.size(); ++i) {
    INFO(fe[i].name);
    REQUIRE(fe[i].name == re[i].name);
    REQUIRE(fe[i].count == re[i].count);
    const std::size_t n =
        static_cast<std::size_t>(fe[i].count) * fq::detail::state_type_size(fe[i].type);
    CHECK(std::memcmp(fe[i].data, re[i].data, n) == 0);
  }
  // The evaluation logits (so the accuracy), bitwise.
  CHECK(std::memcmp(full.data() + fs.size(), resumed.data() + rs.size(), logits) == 0);
}

TEST_CASE("checkpoint: a load restores exactly what was saved", "[checkpoint]") {
  Trainer a(1);
  a.epoch();
  a.epoch();
  const std::vector<std::uint8_t> saved = a.state();
  Trainer b(2);
  REQUIRE(b.state() != saved);
  fq::EngineState data_state(b.data);
  fq::load_checkpoint_bytes(saved, b.net, b.sgd, b.adamw, b.sgd_lr, b.adamw_lr, b.schedule,
                            b.progress, data_state);
  CHECK(b.state() == saved);
  CHECK(parameter_bits(b.net) == parameter_bits(a.net));
  CHECK(b.data() == a.data());  // the data stream continues where it stopped
}

// A small state for the exhaustive damage tests: a layer with FakeQuantize observers, SGD with
// momentum and a QAT schedule, after two steps.
struct Small {
  Small() : lin(3, 2, rng), sgd(lin.parameters(), sgd_options()), schedule(schedule_config()) {
    schedule.add(lin.weight_quantizer());
    schedule.add(lin.output_quantizer());
    const std::vector<float> x = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f};
    const std::vector<std::int32_t> labels = {0, 1};
    for (int s = 0; s < 2; ++s) {
      schedule.advance();
      Tape t;
      t.backward(fq::ops::softmax_cross_entropy(t, lin.forward(t, t.constant(x.data(), {2, 3})),
                                                labels.data()));
      sgd.step();
      sgd.zero_grad();
    }
  }
  std::vector<std::uint8_t> bytes() { return fq::checkpoint_bytes(lin, sgd, schedule); }
  void load(const std::vector<std::uint8_t>& b) {
    fq::load_checkpoint_bytes(b, lin, sgd, schedule);
  }

  std::mt19937 rng{3};
  fq::QLinear<> lin;
  fq::optim::Sgd sgd;
  fq::QatSchedule schedule;
};

// Loading `b` into `s` fails with kInvalidArgument and changes nothing; returns the message.
std::string refused(Small& s, const std::vector<std::uint8_t>& b) {
  const std::vector<std::uint8_t> before = s.bytes();
  const std::string m = fq_test::error_message_of([&] { s.load(b); });
  CHECK(fq_test::error_code_of([&] { s.load(b); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(s.bytes() == before);
  return m;
}

TEST_CASE("checkpoint: every truncation and every single-byte change is refused, nothing loaded",
          "[checkpoint]") {
  Small saved;
  const std::vector<std::uint8_t> good = saved.bytes();
  Small target;  // differs from `saved` only in its weights
  for (float& w : target.lin.weight().value()) w += 0.5f;
  REQUIRE(target.bytes() != good);
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::vector<std::uint8_t> cut(good.begin(),
                                        good.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string m = refused(target, cut);
    CHECK((m.find("truncated") != std::string::npos || m.find("checksum") != std::string::npos ||
           m.find("not a fakequant checkpoint") != std::string::npos));
  }
  for (std::size_t i = 0; i < good.size(); ++i)
    for (std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
      std::vector<std::uint8_t> bad = good;
      bad[i] = static_cast<std::uint8_t>(bad[i] ^ flip);
      (void)refused(target, bad);
    }
  // The intact checkpoint loads and restores exactly.
  target.load(good);
  CHECK(target.bytes() == good);
  CHECK(float_bits(target.lin.weight().value()) == float_bits(saved.lin.weight().value()));
}

TEST_CASE("checkpoint: sealed files with a wrong version, bad values or bad records are refused",
          "[checkpoint]") {
  Small saved;
  const std::vector<std::uint8_t> good = saved.bytes();
  Small target;
  for (float& w : target.lin.weight().value()) w += 0.5f;
  auto patched = [&](std::size_t at, const void* v, std::size_t n) {
    std::vector<std::uint8_t> b = good;
    std::memcpy(b.data() + at, v, n);
    reseal(b);
    return b;
  };
  const std::uint32_t version = 2;
  CHECK(refused(target, patched(8, &version, 4)).find("version 2") != std::string::npos);
  const char magic[8] = {'F', 'Q', 'I', 'N', 'T', '8', '\0', '\1'};
  CHECK(refused(target, patched(0, magic, 8)).find("not a fakequant checkpoint") !=
        std::string::npos);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float zero = 0.0f, negative = -1.0f;
  // A NaN or infinite parameter; a NaN observer range (+-inf is its state before data); a
  // scale <= 0; a NaN momentum buffer.
  const std::size_t w = data_offset(good, "0.weight.value");
  CHECK(refused(target, patched(w + 4, &nan, 4)).find("'0.weight.value': element 1 is nan") !=
        std::string::npos);
  CHECK(refused(target, patched(w, &inf, 4)).find("0.weight.value") != std::string::npos);
  const std::size_t mn = data_offset(good, "0.output_quantizer.observer.min");
  CHECK(refused(target, patched(mn, &nan, 4)).find("observer.min") != std::string::npos);
  const std::size_t sc = data_offset(good, "0.output_quantizer.quantizer.scale");
  CHECK(refused(target, patched(sc, &zero, 4)).find("a scale > 0") != std::string::npos);
  CHECK(refused(target, patched(sc, &negative, 4)).find("quantizer.scale") != std::string::npos);
  const std::size_t mb = data_offset(good, "1.momentum_buffer");
  CHECK(refused(target, patched(mb, &nan, 4)).find("momentum_buffer") != std::string::npos);
  // A zero point outside the range; a symmetric weight quantizer's zero point other than 0.
  const std::int32_t z300 = 300, z1 = 1;
  const std::size_t zp = data_offset(good, "0.output_quantizer.quantizer.zero_point");
  CHECK(refused(target, patched(zp, &z300, 4)).find("zero_point") != std::string::npos);
  const std::size_t wz = data_offset(good, "0.weight_quantizer.quantizer.zero_point");
  CHECK(refused(target, patched(wz, &z1, 4)).find("zero_point") != std::string::npos);
  // A negative step; a bool that is neither 0 nor 1.
  const std::int64_t minus_one = -1;
  const std::size_t st = data_offset(good, "2.step");
  CHECK(refused(target, patched(st, &minus_one, 8)).find("2.step") != std::string::npos);
  const std::uint8_t two = 2;
  const std::size_t fs = data_offset(good, "1.first_step");
  CHECK(refused(target, patched(fs, &two, 1)).find("neither 0 nor 1") != std::string::npos);
  // A configuration that differs (the momentum), a kind that differs.
  const double momentum = 0.5;
  CHECK(refused(target, patched(data_offset(good, "1.momentum"), &momentum, 8))
            .find("'1.momentum' is 0.5 in the checkpoint, 0.9000") != std::string::npos);
  const char adam[3] = {'a', 'd', 'a'};
  CHECK(refused(target, patched(data_offset(good, "1.kind"), adam, 3))
            .find("the checkpoint holds a ada, this object is a sgd") != std::string::npos);
  // Records: a name length beyond the limit or the file, an element count beyond the limit
  // or the file, an unknown role or type, bytes after the last record, an entry count that
  // differs.
  const std::uint32_t long_name = 5000, past_end = 100000;
  CHECK(refused(target, patched(16, &long_name, 4)).find("a name of 5000 bytes") !=
        std::string::npos);
  CHECK(refused(target, patched(16, &past_end, 4)).find("name") != std::string::npos);
  const std::size_t first_name = std::strlen("0.kind");
  const std::uint64_t huge = std::uint64_t{1} << 40, big = 1000000;
  CHECK(refused(target, patched(20 + first_name + 2, &huge, 8)).find("elements") !=
        std::string::npos);
  CHECK(refused(target, patched(20 + first_name + 2, &big, 8)).find("truncated") !=
        std::string::npos);
  const std::uint8_t role9 = 9, type0 = 0;
  CHECK(refused(target, patched(20 + first_name, &role9, 1)).find("role 9") != std::string::npos);
  CHECK(refused(target, patched(20 + first_name + 1, &type0, 1)).find("type 0") !=
        std::string::npos);
  {
    std::vector<std::uint8_t> b = good;
    b.insert(b.end() - 4, std::uint8_t{0});
    reseal(b);
    CHECK(refused(target, b).find("1 bytes after the last entry") != std::string::npos);
  }
  std::uint32_t count;
  std::memcpy(&count, good.data() + 12, 4);
  const std::uint32_t fewer = count - 1;
  CHECK(refused(target, patched(12, &fewer, 4)).find("bytes after the last entry") !=
        std::string::npos);
}

TEST_CASE("checkpoint: another architecture, scheme, optimizer or object list is refused",
          "[checkpoint]") {
  Small saved;
  const std::vector<std::uint8_t> good = saved.bytes();
  std::mt19937 rng(1);
  auto sched = [] { return fq::QatSchedule(schedule_config()); };
  auto refuse = [&](auto&&... xs) {
    const std::vector<std::uint8_t> before = fq::checkpoint_bytes(xs...);
    const std::string m =
        fq_test::error_message_of([&] { fq::load_checkpoint_bytes(good, xs...); });
    CHECK(fq_test::error_code_of([&] { fq::load_checkpoint_bytes(good, xs...); }) ==
          fq::ErrorCode::kInvalidArgument);
    CHECK(fq::checkpoint_bytes(xs...) == before);  // nothing half-loaded
    return m;
  };
  {  // another shape
    fq::QLinear<> lin(3, 4, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    CHECK(refuse(lin, sgd, s).find("'0.weight.shape' is 2 in the checkpoint, 4 here") !=
          std::string::npos);
  }
  {  // other quantizers: LSQ weights
    fq::QLinear<LsqWeights> lin(3, 2, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    CHECK(
        refuse(lin, sgd, s).find("holds a fake_quantize, this object is a learnable_fake_quant") !=
        std::string::npos);
  }
  {  // a running min-max observer instead of the moving average
    using MinMaxAct = fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver>;
    fq::QLinear<fq::DefaultWeightFakeQuant, MinMaxAct> lin(3, 2, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    CHECK(refuse(lin, sgd, s).find("moving_average_minmax_observer, this object is a minmax") !=
          std::string::npos);
  }
  {  // no output quantizer
    fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> lin(3, 2, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.weight_quantizer());
    CHECK(refuse(lin, sgd, s).find("'0.output_quantizer.kind' in the checkpoint, '0.has_bias'") !=
          std::string::npos);
  }
  {  // AdamW instead of SGD: the layer would load, but nothing is (the check comes first)
    fq::QLinear<> lin(3, 2, rng);
    fq::optim::AdamW adamw(lin.parameters(), adamw_options());
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    CHECK(refuse(lin, adamw, s).find("holds a sgd, this object is a adamw") != std::string::npos);
  }
  {  // a schedule with another config, another number of hooks
    fq::QLinear<> lin(3, 2, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    fq::QatScheduleConfig c = schedule_config();
    c.bn_freeze = 14;
    fq::QatSchedule s(c);
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    CHECK(refuse(lin, sgd, s).find("'2.config'") != std::string::npos);
    fq::QatSchedule s2 = sched();
    s2.add(lin.weight_quantizer());
    CHECK(refuse(lin, sgd, s2).find("'2.quantizer_hooks' is 2 in the checkpoint, 1 here") !=
          std::string::npos);
  }
  {  // fewer and more objects than saved
    fq::QLinear<> lin(3, 2, rng);
    fq::optim::Sgd sgd(lin.parameters(), sgd_options());
    CHECK(refuse(lin, sgd).find("the first left over is '2.kind'") != std::string::npos);
    fq::QatSchedule s = sched();
    s.add(lin.weight_quantizer());
    s.add(lin.output_quantizer());
    fq::TrainingProgress p;
    CHECK(refuse(lin, sgd, s, p).find("these objects go on with '3.kind'") != std::string::npos);
  }
}

TEST_CASE("checkpoint: files — round trip, save refuses NaN, unreadable paths", "[checkpoint]") {
  Small saved;
  const std::string path = "fq_checkpoint_file.ckpt";
  fq::save_checkpoint(path, saved.lin, saved.sgd, saved.schedule);
  Small target;
  for (float& w : target.lin.weight().value()) w -= 0.25f;
  fq::load_checkpoint(path, target.lin, target.sgd, target.schedule);
  CHECK(target.bytes() == saved.bytes());
  CHECK(fq::read_checkpoint_value<std::int64_t>(path, "2.step") == 1);
  CHECK(fq::read_checkpoint_value<bool>(path, "2.applied"));
  CHECK(fq_test::error_message_of([&] {
          (void)fq::read_checkpoint_value<double>(path, "2.step");
        }).find("'2.step' is not a scalar state of type f64") != std::string::npos);
  CHECK(fq_test::error_message_of([&] {
          (void)fq::read_checkpoint_value<double>(path, "2.nope");
        }).find("no entry '2.nope'") != std::string::npos);
  std::remove(path.c_str());
  CHECK(fq_test::error_code_of([&] {
          fq::load_checkpoint(path, target.lin, target.sgd, target.schedule);
        }) == fq::ErrorCode::kIoError);
  CHECK(fq_test::error_code_of([&] { fq::load_checkpoint(".", target.lin); }) ==
        fq::ErrorCode::kIoError);

  target.lin.weight().value()[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK(fq_test::error_code_of([&] { fq::save_checkpoint(path, target.lin); }) ==
        fq::ErrorCode::kNonFiniteInput);
  CHECK(fq_test::error_message_of([&] {
          (void)fq::checkpoint_bytes(target.lin);
        }).find("'0.weight.value': element 2 is nan, not finite") != std::string::npos);
}

// Everything else with a visit_state: trained a little, saved, loaded into objects built the
// same way from another seed, saved again: the same bytes, the same outputs.
struct Zoo {
  explicit Zoo(std::uint32_t seed)
      : rng(seed),
        conv(2, 3, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU6),
        lin(12, 4, rng),
        norm(4),
        rms(4),
        lsq(fq::QuantRange{-8, 7}, 3, false) {}
  std::vector<float> run() {
    std::normal_distribution<float> nd;
    std::vector<float> x(2 * 2 * 2 * 2);
    for (float& v : x) v = nd(rng);
    Tape t;
    Var h = conv.forward(t, in.forward(t, t.constant(x.data(), {2, 2, 2, 2})));
    h = lin.forward(t, h.reshape({2, 12}));
    h = rms.forward(t, norm.forward(t, h));
    h = fq::ops::fake_quant(t, h, pact);
    const Var y = fq::ops::fake_quant(t, h.reshape({2, 4}), hist);
    t.backward(fq::ops::mean(t, y));
    opt.step();
    opt.zero_grad();
    return std::vector<float>(y.value(), y.value() + y.numel());
  }
  template <class V>
  void visit_state(V& v) {
    v.child("in", in);
    v.child("conv", conv);
    v.child("lin", lin);
    v.child("norm", norm);
    v.child("rms", rms);
    v.child("pact", pact);
    v.child("hist", hist);
    v.child("lsq", lsq);
  }
  std::mt19937 rng;
  fq::ActQuant<> in;
  fq::QConv2d<> conv;
  fq::QLinear<fq::LearnableFakeQuant<fq::LsqScheme<fq::LsqTorch, fq::TorchGradScale, fq::Log2Scale,
                                                   fq::NoScaleRestriction, fq::PerChannel<0>>,
                                     fq::Int8>,
              fq::LearnableFakeQuant<fq::LsqScheme<>>>
      lin;
  fq::LayerNorm norm;
  fq::RmsNorm rms;
  fq::Pact<4> pact{3.0f, 1e-3f};
  fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::HistogramObserver<fq::MseRange>> hist;
  fq::LsqQuantizer<fq::LsqScheme<fq::LsqTorch, fq::TorchGradScale, fq::LinearScale<>,
                                 fq::NoScaleRestriction, fq::PerChannel<0>>>
      lsq;
  fq::optim::Adam opt{fq::optim::parameters_of(conv, lin, norm, rms, pact)};
  fq::optim::StepLR lr{0.1, 3};
};

TEST_CASE("checkpoint: every stateful type round-trips", "[checkpoint]") {
  Zoo a(1), b(2);
  a.lsq.set_scale(0.25f);
  for (int i = 0; i < 3; ++i) (void)a.run();
  (void)b.run();
  const std::vector<std::uint8_t> saved = fq::checkpoint_bytes(a, a.opt, a.lr);
  REQUIRE(fq::checkpoint_bytes(b, b.opt, b.lr) != saved);
  fq::load_checkpoint_bytes(saved, b, b.opt, b.lr);
  CHECK(fq::checkpoint_bytes(b, b.opt, b.lr) == saved);
  CHECK(b.hist.observer().histogram().counts() == a.hist.observer().histogram().counts());
  CHECK(fq_test::bits_of(b.pact.alpha()) == fq_test::bits_of(a.pact.alpha()));
  CHECK(float_bits(std::as_const(b.lsq).scale_param()) ==
        float_bits(std::as_const(a.lsq).scale_param()));
  b.rng = a.rng;
  CHECK(float_bits(b.run()) == float_bits(a.run()));
  // Another chooser's observer kind is the same, another bin count is not.
  Zoo c(3);
  c.hist.observer() = fq::HistogramObserver<fq::MseRange>(1024);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(saved, c, c.opt, c.lr);
        }).find("'0.hist.observer.histogram.bins' is 2048 in the checkpoint, 1024 here") !=
        std::string::npos);
  // Another step size of the LR schedule.
  Zoo d(4);
  fq::optim::StepLR lr5(0.1, 5);
  CHECK(fq_test::error_message_of([&] {
          fq::load_checkpoint_bytes(saved, d, d.opt, lr5);
        }).find("'2.step_size' is 3 in the checkpoint, 5 here") != std::string::npos);
}

}  // namespace fq_checkpoint_test
