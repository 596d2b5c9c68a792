// SPDX-License-Identifier: MIT
// examples/fashion_mnist_data.hpp: what the two Fashion-MNIST demos share — their command-line
// flags, the IDX files of Debian's dataset-fashion-mnist read (gzip, zlib) and normalised, the
// bar chart of accuracies as SVG, the thread count, and a clock.
#ifndef FQ_EXAMPLES_FASHION_MNIST_DATA_HPP_
#define FQ_EXAMPLES_FASHION_MNIST_DATA_HPP_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>
#include <zlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Core>

namespace fmnist {

/// Command-line flags: `--name value` sets the variable registered for the name, a switch
/// (`--name` alone) sets its bool. An unknown flag or a bad value prints the usage and exits 2.
class Flags {
 public:
  explicit Flags(const char* program) : program_(program) {}
  template <class T>
  Flags& add(const char* name, T& target) {
    flags_.push_back({name, &target});
    return *this;
  }
  Flags& add_switch(const char* name, bool& target) {
    switches_.push_back({name, &target});
    return *this;
  }
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (set_switch(a)) continue;
      const auto f =
          std::find_if(flags_.begin(), flags_.end(), [&](const Flag& g) { return a == g.name; });
      if (f == flags_.end()) usage(("unknown flag " + a).c_str());
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      const std::string v = argv[++i];
      try {
        std::visit(
            [&](auto* t) {
              using T = std::remove_pointer_t<decltype(t)>;
              if constexpr (std::is_same<T, int>::value)
                *t = std::stoi(v);
              else if constexpr (std::is_same<T, long>::value)
                *t = std::stol(v);
              else if constexpr (std::is_same<T, double>::value)
                *t = std::stod(v);
              else
                *t = v;
            },
            f->target);
      } catch (const std::logic_error&) {
        usage(("bad value '" + v + "' for " + a).c_str());
      }
    }
  }
  [[noreturn]] void usage(const char* msg) const {
    std::string line;
    for (const Flag& f : flags_) line += std::string(" ") + f.name + " X";
    for (const Switch& s : switches_) line += std::string(" ") + s.name;
    std::fprintf(stderr, "%s: %s\nflags:%s\n", program_, msg, line.c_str());
    std::exit(2);
  }

 private:
  struct Flag {
    const char* name;
    std::variant<int*, long*, double*, std::string*> target;
  };
  struct Switch {
    const char* name;
    bool* target;
  };
  bool set_switch(const std::string& a) const {
    for (const Switch& s : switches_)
      if (a == s.name) return *s.target = true;
    return false;
  }
  const char* program_;
  std::vector<Flag> flags_;
  std::vector<Switch> switches_;
};

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
