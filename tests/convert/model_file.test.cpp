// SPDX-License-Identifier: MIT
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/model_file.hpp>

#include "convert/convert_test_util.hpp"

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
