// SPDX-License-Identifier: MIT
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/int8_model.hpp>
#include <fakequant/int8/model_file.hpp>

#include "convert/convert_test_util.hpp"
#include "test_util.hpp"

using fq_convert_test::poke;
using fq_convert_test::read_all;
using fq_convert_test::seal;
using fq_convert_test::write_all;

TEST_CASE("model file: layers round-trip and give the same outputs; damage is reported",
          "[convert]") {
  std::mt19937 rng(4);
  fq::QConvBn2d<> conv(2, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU);
  fq::QLinear<> lin(4 * 6 * 6, 5, rng, fq::Activation::kReLU);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> logits(5, 3, rng);
  std::vector<float> x(2 * 2 * 6 * 6);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  {
    fq::Tape t;
    fq::Var h = conv.forward(t, t.constant(x.data(), {2, 2, 6, 6}));
    logits.forward(t, lin.forward(t, h.reshape({2, 4 * 6 * 6})));
  }
  const fq::ActQParams in{0.05f, 128};
  std::vector<fq::Int8Layer> layers;
  layers.emplace_back(fq::convert(conv, in, 6, 6));
  const auto& c = std::get<fq::Int8Conv2d>(layers[0]);
  layers.emplace_back(fq::convert(lin, c.output_qparams()));
  layers.emplace_back(fq::convert(logits, std::get<fq::Int8Linear>(layers[1]).output_qparams()));

  const std::string path = "fq_model_file_test.bin";
  fq::save_int8_model(path, layers);
  const std::vector<fq::Int8Layer> loaded = fq::load_int8_model(path);
  REQUIRE(loaded.size() == 3);

  auto run = [&](const std::vector<fq::Int8Layer>& ls) {
    std::vector<std::uint8_t> xq(x.size()), a(2 * 4 * 36), h(2 * 5);
    std::uniform_int_distribution<int> u(0, 255);
    std::mt19937 r2(1);
    for (auto& v : xq) v = static_cast<std::uint8_t>(u(r2));
    std::get<fq::Int8Conv2d>(ls[0]).run(xq.data(), 2, a.data());
    std::get<fq::Int8Linear>(ls[1]).run(a.data(), 2, h.data());
    std::vector<float> out(6);
    std::get<fq::Int8Linear>(ls[2]).run(h.data(), 2, out.data());
    return out;
  };
  CHECK(run(layers) == run(loaded));

  const std::vector<char> good = read_all(path);
  std::vector<char> bad = good;
  bad.resize(good.size() / 2);
  write_all(path, bad);
  CHECK_THROWS_WITH(fq::load_int8_model(path),
                    Catch::Contains("checksum") || Catch::Contains("truncated"));
  bad = good;
  bad[good.size() / 2] = static_cast<char>(bad[good.size() / 2] ^ 0x10);
  write_all(path, bad);
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("checksum mismatch"));
  bad = good;
  bad[0] = 'X';
  write_all(path, bad);
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("not a fakequant int8 model"));
  write_all(path, std::vector<char>(good.begin(), good.begin() + 10));
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("truncated"));
  std::remove(path.c_str());
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("cannot open"));
}

TEST_CASE("model file: versions 1 and 2 are still read", "[convert]") {
  std::mt19937 rng(6);
  fq::QConvBn2d<> conv(2, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> logits(4 * 6 * 6, 3, rng);
  std::vector<float> x(2 * 2 * 6 * 6);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  {
    fq::Tape t;
    logits.forward(t, conv.forward(t, t.constant(x.data(), {2, 2, 6, 6})).reshape({2, 4 * 36}));
  }
  const fq::ActQParams in{0.05f, 128};
  const fq::Int8Conv2d c = fq::convert(conv, in, 6, 6);
  const std::vector<fq::Int8Layer> layers = {c, fq::convert(logits, c.output_qparams())};
  auto run = [&](const std::vector<fq::Int8Layer>& ls) {
    std::vector<std::uint8_t> xq(x.size()), a(2 * 4 * 36);
    for (std::size_t i = 0; i < xq.size(); ++i) xq[i] = static_cast<std::uint8_t>(i * 37 % 256);
    std::get<fq::Int8Conv2d>(ls[0]).run(xq.data(), 2, a.data());
    std::vector<float> out(6);
    std::get<fq::Int8Linear>(ls[1]).run(a.data(), 2, out.data());
    return out;
  };
  const std::string path = "fq_model_file_versions.bin";
  fq::save_int8_model(path, layers);
  const std::vector<char> v3 = read_all(path);
  // Version 2 is version 3 without the input record (bytes 16 to 71).
  std::vector<char> v2 = v3;
  v2.erase(v2.begin() + 16, v2.begin() + 72);
  poke(v2, 8, std::uint32_t{2});
  seal(v2);
  write_all(path, v2);
  const std::vector<fq::Int8Layer> loaded2 = fq::load_int8_model(path);
  REQUIRE(loaded2.size() == 2);
  CHECK(run(loaded2) == run(layers));
  CHECK_THROWS_WITH(fq::load_int8_sequential(path),
                    Catch::Contains("(version 2) holds a list of layers"));
  std::vector<char> bad = v2;  // version 2 has no max-pool steps
  poke(bad, 16, std::uint32_t{3});
  seal(bad);
  write_all(path, bad);
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("step 0 has unknown kind 3"));

  // Version 1 also lacks the output range: in a version 3 file of one layer, the step starts
  // at byte 72, its qparams end at byte 192 and its range at 200.
  fq::save_int8_model(path, std::vector<fq::Int8Layer>{layers[0]});
  const std::vector<char> one = read_all(path);
  std::vector<char> v1 = one;
  v1.erase(v1.begin() + 192, v1.begin() + 200);
  v1.erase(v1.begin() + 16, v1.begin() + 72);
  poke(v1, 8, std::uint32_t{1});
  write_all(path, v1);
  CHECK_THROWS_WITH(fq::load_int8_model(path), Catch::Contains("checksum mismatch"));
  seal(v1);
  write_all(path, v1);
  const std::vector<fq::Int8Layer> loaded1 = fq::load_int8_model(path);
  REQUIRE(loaded1.size() == 1);
  const auto& c1 = std::get<fq::Int8Conv2d>(loaded1[0]);
  CHECK(c1.params().out_min == 0);
  CHECK(c1.params().out_max == 255);
  CHECK(c1.params().weight == c.params().weight);
  CHECK(c1.params().multiplier.size() == 4);
  std::vector<std::uint8_t> xq(x.size() / 2, 200), y1(4 * 36), y(4 * 36);
  c1.run(xq.data(), 1, y1.data());
  c.run(xq.data(), 1, y.data());
  CHECK(y1 == y);
  std::remove(path.c_str());
}

namespace {
// A one-conv model file (input 2x6x6, 4 outputs, kernel 3, padding 1) and the byte offsets of
// its step's shape fields: Conv2dShape in declaration order from byte 80, 8 bytes each.
std::vector<char> one_conv_file(const std::string& path) {
  std::mt19937 rng(8);
  fq::QConv2d<> conv(2, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU);
  std::vector<float> x(2 * 2 * 6 * 6, 0.5f);
  {
    fq::Tape t;
    conv.forward(t, t.constant(x.data(), {2, 2, 6, 6}));
  }
  fq::save_int8_model(path, std::vector<fq::Int8Layer>{fq::convert(conv, {0.05f, 128}, 6, 6)});
  return read_all(path);
}
constexpr std::size_t kInH = 96, kInW = 104, kStrideH = 136, kStrideW = 144, kPadH = 152,
                      kPadW = 160;

}  // namespace

TEST_CASE("model file: fields within bounds whose derived sizes are huge are refused",
          "[convert][errors]") {
  const std::string path = "fq_model_file_sizes.bin";
  const std::vector<char> good = one_conv_file(path);
  REQUIRE(fq::load_int8_model(path).size() == 1);
  struct Forgery {
    std::vector<std::pair<std::size_t, std::int64_t>> fields;
    const char* what;
  };
  const Forgery forgeries[] = {
      // Padding and stride of 2^20: a 3x3 output, but a padded input of 2 x (2^21 + 6)^2 bytes.
      {{{kPadH, 1 << 20}, {kPadW, 1 << 20}, {kStrideH, 1 << 20}, {kStrideW, 1 << 20}},
       "the padded input"},
      // Padding 2^13, stride 1: the output (4 x 16388^2) is within 2^31 bytes, the unfolded
      // input (16388^2 positions x 20) is not.
      {{{kPadH, 1 << 13}, {kPadW, 1 << 13}}, "the unfolded (im2col) input"},
      // A 2^24 x 2^24 input: more than 2^31 elements per image.
      {{{kInH, 1 << 24}, {kInW, 1 << 24}}, "bad shape"},
  };
  for (const Forgery& f : forgeries) {
    std::vector<char> bad = good;
    for (const auto& fv : f.fields) poke(bad, fv.first, fv.second);
    seal(bad);
    write_all(path, bad);
    INFO(f.what);
    const std::string m = fq_test::error_message_of([&] { fq::load_int8_model(path); });
    CHECK(m.find(f.what) != std::string::npos);
    if (std::string(f.what) != "bad shape")
      CHECK(fq_test::error_code_of([&] { fq::load_int8_model(path); }) ==
            fq::ErrorCode::kOutOfMemory);
  }
  std::remove(path.c_str());
}

TEST_CASE("model file: directories, devices and missing paths are kIoError", "[convert][errors]") {
  const auto io = fq::ErrorCode::kIoError;
  CHECK(fq_test::error_code_of([] { fq::load_int8_model("fq_no_such_model.fqi8"); }) == io);
  CHECK(fq_test::error_code_of([] { fq::load_int8_sequential("."); }) == io);
  CHECK(fq_test::error_message_of([] { fq::load_int8_model("."); }).find("directory") !=
        std::string::npos);
  // An endless stream is refused before anything is read (it used to hang).
  for (const char* dev : {"/dev/zero", "/dev/urandom", "/dev/null"}) {
    if (!std::ifstream(dev)) continue;
    INFO(dev);
    CHECK(fq_test::error_code_of([&] { fq::load_int8_model(dev); }) == io);
    CHECK(fq_test::error_message_of([&] {
            fq::load_int8_sequential(dev);
          }).find("not a regular file") != std::string::npos);
  }
  // Writing to a directory.
  CHECK(fq_test::error_code_of([] { fq::save_int8_model(".", std::vector<fq::Int8Layer>{}); }) ==
        io);
}

TEST_CASE("integer layers and models check their sizes and arrays at construction",
          "[convert][errors]") {
  fq::Int8LayerParams p;
  p.weight.assign(12, 1);
  p.weight_scale.assign(3, 0.1f);
  p.bias.assign(3, 0);
  p.real_bias.assign(3, 0.0f);
  p.float_out = true;
  CHECK_NOTHROW(fq::Int8Linear(p, 4));
  // Fewer weights than out x in: refused instead of packing past the array.
  CHECK(fq_test::error_code_of([&] { fq::Int8Linear(p, 5); }) == fq::ErrorCode::kInvalidArgument);
  CHECK(fq_test::error_code_of([&] { fq::Int8Linear(p, 0); }) == fq::ErrorCode::kShapeMismatch);
  // K beyond the exact int32 accumulation: refused at construction, not at the first run.
  CHECK(fq_test::error_code_of([&] { fq::Int8Linear(p, fq::kMaxGemmK + 1); }) ==
        fq::ErrorCode::kInvalidArgument);
  // A conv whose padded input would take 2^42 bytes.
  fq::Conv2dShape s;
  s.in_channels = 1;
  s.in_h = s.in_w = 4;
  s.out_channels = 3;
  s.kernel_h = s.kernel_w = 2;
  s.pad_h = s.pad_w = 1 << 20;
  s.stride_h = s.stride_w = 1 << 20;
  fq::Int8LayerParams c = p;
  c.float_out = false;
  c.multiplier.assign(3, fq::QuantizedMultiplier{1 << 30, 0});
  CHECK(fq_test::error_code_of([&] { fq::Int8Conv2d(c, s); }) == fq::ErrorCode::kOutOfMemory);
  s.pad_h = s.pad_w = 1;
  s.stride_h = s.stride_w = 1;
  CHECK_NOTHROW(fq::Int8Conv2d(c, s));
  c.multiplier.pop_back();
  CHECK(fq_test::error_code_of([&] { fq::Int8Conv2d(c, s); }) == fq::ErrorCode::kInvalidArgument);
  // A model whose per-image tensor exceeds 2^31 elements.
  CHECK(fq_test::error_code_of([] {
          fq::Int8Model({0.1f, 0}, {1 << 16, 1 << 16},
                        {fq::Int8Flatten(fq::Shape{1 << 16, 1 << 16})});
        }) == fq::ErrorCode::kOutOfMemory);
}

TEST_CASE("Int8Model::run in chunks gives the same outputs", "[convert][bit_exact]") {
  std::mt19937 rng(9);
  fq::QLinear<> fc(12, 5, rng, fq::Activation::kReLU);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> logits(5, 3, rng);
  std::normal_distribution<float> nd;
  std::vector<float> x(37 * 12);
  for (float& v : x) v = nd(rng);
  {
    fq::Tape t;
    logits.forward(t, fc.forward(t, t.constant(x.data(), {37, 12})));
  }
  fq::Int8Model m = fq::convert_sequential(fq::ActQParams{0.05f, 128}, {12}, fc, logits);
  fq::Int8Model levels = fq::convert_sequential(fq::ActQParams{0.05f, 128}, {12}, fc);
  std::vector<float> all(37 * 3), chunked(37 * 3);
  std::vector<std::uint8_t> lv_all(37 * 5), lv_chunked(37 * 5);
  m.run(x.data(), 37, all.data());
  levels.run(x.data(), 37, lv_all.data());
  for (std::int64_t bytes : {1, 12, 13, 100}) {  // 1, 1, 1 and 8 images per chunk
    m.set_run_chunk_bytes(bytes);
    levels.set_run_chunk_bytes(bytes);
    m.run(x.data(), 37, chunked.data());
    levels.run(x.data(), 37, lv_chunked.data());
    CHECK(chunked == all);
    CHECK(lv_chunked == lv_all);
  }
  CHECK(fq_test::error_code_of([&] { m.set_run_chunk_bytes(0); }) ==
        fq::ErrorCode::kInvalidArgument);
}
