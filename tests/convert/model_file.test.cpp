// SPDX-License-Identifier: MIT
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/model_file.hpp>

namespace {
std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_all(const std::string& path, const std::vector<char>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}
}  // namespace

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
