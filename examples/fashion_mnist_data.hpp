// SPDX-License-Identifier: MIT
// examples/fashion_mnist_data.hpp: what the two Fashion-MNIST demos share — the IDX files of
// Debian's dataset-fashion-mnist read (gzip, zlib) and normalised, the bar chart of accuracies
// as SVG, the thread count, and a clock.
#ifndef FQ_EXAMPLES_FASHION_MNIST_DATA_HPP_
#define FQ_EXAMPLES_FASHION_MNIST_DATA_HPP_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>
#include <zlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Core>

namespace fmnist {

struct Dataset {
  std::vector<float> images;  // [n, 1, 28, 28], normalised
  std::vector<std::int32_t> labels;
  long n = 0;
};

inline std::vector<unsigned char> read_gz(const char* program, const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    std::fprintf(stderr,
                 "%s: cannot open %s\n  Install Debian's dataset-fashion-mnist "
                 "(bash scripts/demo.sh does) or pass --data DIR.\n",
                 program, path.c_str());
    std::exit(1);
  }
  std::vector<unsigned char> out;
  std::vector<unsigned char> buf(1 << 16);
  int got;
  while ((got = gzread(f, buf.data(), unsigned(buf.size()))) > 0)
    out.insert(out.end(), buf.begin(), buf.begin() + got);
  gzclose(f);
  return out;
}

inline std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         p[3];
}

/// The `prefix` ("train" or "t10k") split, at most `limit` images (0: all), pixels/255
/// normalised by the training set's mean and standard deviation.
inline Dataset load(const char* program, const std::string& dir, const char* prefix, long limit) {
  const auto img = read_gz(program, dir + "/" + prefix + "-images-idx3-ubyte.gz");
  const auto lab = read_gz(program, dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  if (img.size() < 16 || lab.size() < 8 || be32(img.data()) != 2051 || be32(lab.data()) != 2049) {
    std::fprintf(stderr, "%s: %s/%s-*: not IDX image/label files\n", program, dir.c_str(), prefix);
    std::exit(1);
  }
  const long n = be32(img.data() + 4), rows = be32(img.data() + 8), cols = be32(img.data() + 12);
  if (rows != 28 || cols != 28 || long(be32(lab.data() + 4)) != n ||
      img.size() != std::size_t(16 + n * 784) || lab.size() != std::size_t(8 + n)) {
    std::fprintf(stderr, "%s: %s/%s-*: unexpected sizes\n", program, dir.c_str(), prefix);
    std::exit(1);
  }
  Dataset d;
  d.n = limit > 0 ? std::min(limit, n) : n;
  d.images.resize(std::size_t(d.n * 784));
  d.labels.resize(std::size_t(d.n));
  constexpr float kMean = 0.2860f, kStd = 0.3530f;  // Fashion-MNIST training-set statistics
  for (long i = 0; i < d.n * 784; ++i)
    d.images[std::size_t(i)] = (float(img[std::size_t(16 + i)]) / 255.0f - kMean) / kStd;
  for (long i = 0; i < d.n; ++i) d.labels[std::size_t(i)] = lab[std::size_t(8 + i)];
  return d;
}

/// A horizontal bar chart of test accuracies (axis lo..100%), the first bar green.
inline void write_svg(const std::string& path,
                      const std::vector<std::pair<std::string, double>>& rows, double lo = 0.80) {
  std::ofstream f(path);
  const int w = 560, bar_h = 36, top = 40, left = 130;
  const double hi = 1.0;
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='"
    << top + bar_h * int(rows.size()) + 30 << "' font-family='sans-serif' font-size='13'>\n"
    << "<text x='10' y='22' font-size='15'>Fashion-MNIST test accuracy (axis " << int(lo * 100)
    << "-100%)</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double a = std::clamp(rows[i].second, lo, hi);
    const int y = top + int(i) * bar_h, len = int((a - lo) / (hi - lo) * (w - left - 80));
    f << "<text x='10' y='" << y + 22 << "'>" << rows[i].first << "</text>\n"
      << "<rect x='" << left << "' y='" << y + 6 << "' width='" << len << "' height='" << bar_h - 12
      << "' fill='" << (i == 0 ? "#4a7" : "#47a") << "'/>\n"
      << "<text x='" << left + len + 6 << "' y='" << y + 22 << "'>"
      << std::to_string(rows[i].second * 100).substr(0, 5) << "%</text>\n";
  }
  f << "</svg>\n";
}

inline void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace fmnist

#endif  // FQ_EXAMPLES_FASHION_MNIST_DATA_HPP_
