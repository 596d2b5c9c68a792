// SPDX-License-Identifier: MIT
// tests/convert/convert_test_util.hpp: helpers the convert tests share — random on-grid input
// levels, and reading, editing and re-sealing model files.
#ifndef FQ_TESTS_CONVERT_CONVERT_TEST_UTIL_HPP_
#define FQ_TESTS_CONVERT_CONVERT_TEST_UTIL_HPP_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <fakequant/int8/model_file.hpp>
#include <fakequant/int8/params.hpp>

namespace fq_convert_test {

/// Random input levels in [0, 255] and their dequantized values on the grid of q: exactly what
/// a uint8 input quantizer with qparams q would pass on.
inline std::vector<float> random_input(std::size_t n, fq::ActQParams q, std::mt19937& rng,
                                       std::vector<std::uint8_t>& levels) {
  std::uniform_int_distribution<int> u(0, 255);
  std::vector<float> x(n);
  levels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    levels[i] = static_cast<std::uint8_t>(u(rng));
    x[i] = (float(levels[i]) - float(q.zero_point)) * q.scale;
  }
  return x;
}

inline std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
inline void write_all(const std::string& path, const std::vector<char>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}
template <class T>
void poke(std::vector<char>& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}
/// Rewrites the trailing CRC-32 after an edit, so that a forged file passes the checksum.
inline void seal(std::vector<char>& b) {
  const std::uint32_t crc =
      fq::detail::crc32(reinterpret_cast<const std::uint8_t*>(b.data()), b.size() - 4);
  poke(b, b.size() - 4, crc);
}

}  // namespace fq_convert_test

#endif  // FQ_TESTS_CONVERT_CONVERT_TEST_UTIL_HPP_
