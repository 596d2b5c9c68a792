// SPDX-License-Identifier: MIT
// bm_histogram: histogram observer update speed (target >= 1 G elements/s per core), 1 thread.
//   HistogramAdd      fq::Histogram::add (min/max pass with the NaN/Inf check + binning pass),
//                     2048 bins, N(0,1) data inside the current range (no growth)
//   NaiveHistogram    the loop a user would write: one counter array, the same bin formula
//   MinMaxObserve     fq::MinMaxObserver::observe alone (the first pass), for reference
//   MseChoose, EntropyChoose, PercentileChoose   one range choice on a 2048-bin histogram
// Buffers are filled once per size, outside the timed loop.
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/observer/minmax_observer.hpp>

namespace {

std::vector<float> make_data(std::int64_t n) {
  std::vector<float> x(static_cast<std::size_t>(n));
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  x[0] = -8.0f;  // a fixed range, so that the timed adds never grow it
  x[1] = 8.0f;
  return x;
}

fq::TensorView<const float> view(const std::vector<float>& x) {
  return fq::TensorView<const float>(x.data(), {static_cast<std::int64_t>(x.size())});
}

void BM_HistogramAdd(benchmark::State& st) {
  const auto x = make_data(st.range(0));
  fq::Histogram h(2048);
  h.add(view(x));
  for (auto _ : st) {
    h.add(view(x));
    benchmark::DoNotOptimize(h.counts().data());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

void BM_NaiveHistogram(benchmark::State& st) {
  const auto x = make_data(st.range(0));
  std::vector<std::uint64_t> c(2048, 0);
  const float lo = -8.0f, w = 16.0f, n = 2048.0f;
  for (auto _ : st) {
    for (float v : x) {
      float t = (v - lo) * n / w;
      t = t < 0.0f ? 0.0f : (t > n - 1.0f ? n - 1.0f : t);
      ++c[static_cast<std::size_t>(t)];
    }
    benchmark::DoNotOptimize(c.data());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

void BM_MinMaxObserve(benchmark::State& st) {
  const auto x = make_data(st.range(0));
  fq::MinMaxObserver ob;
  for (auto _ : st) {
    ob.observe(view(x));
    benchmark::DoNotOptimize(ob.min_val().data());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

template <class Chooser>
void BM_Choose(benchmark::State& st) {
  const auto x = make_data(1 << 20);
  fq::HistogramObserver<Chooser> ob(2048);
  ob.observe(view(x));
  for (auto _ : st) {
    const fq::ClipRange r = ob.clip_range({0, 255});
    benchmark::DoNotOptimize(r);
  }
}

}  // namespace

BENCHMARK(BM_HistogramAdd)->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24);
BENCHMARK(BM_NaiveHistogram)->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24);
BENCHMARK(BM_MinMaxObserve)->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24);
BENCHMARK_TEMPLATE(BM_Choose, fq::MseRange)->Name("MseChoose")->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Choose, fq::EntropyRange)
    ->Name("EntropyChoose")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Choose, fq::PercentileRange)
    ->Name("PercentileChoose")
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
