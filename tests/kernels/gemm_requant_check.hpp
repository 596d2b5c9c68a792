// SPDX-License-Identifier: MIT
// tests/kernels/gemm_requant_check.hpp: the check the requantizing-GEMM tests share — on every
// supported ISA, gemm_requant into a contiguous [m, n] output and into a transposed [n, m + 3]
// output (the strided layout a convolution writes; 3 padding columns that must stay intact)
// equals the scalar stages bit for bit.
#ifndef FQ_TESTS_KERNELS_GEMM_REQUANT_CHECK_HPP_
#define FQ_TESTS_KERNELS_GEMM_REQUANT_CHECK_HPP_

#include <cstdint>
#include <vector>

#include <fakequant/kernels/gemm_requant.hpp>

#include "catch.hpp"

namespace fq_kernels_test {

template <class Out, class A, class Pipeline>
void check_requant_paths(const std::vector<A>& a, std::int64_t m, std::int64_t k,
                         const fq::PackedWeights& pw, const Pipeline& pipe) {
  const std::int64_t n = pw.n();
  std::vector<Out> ref(static_cast<std::size_t>(m * n));
  fq::gemm_requant(a.data(), m, k, pw, std::int32_t{7}, pipe,
                   fq::GemmOutput<Out>{ref.data(), n, 1, 0}, fq::Isa::kScalar);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("isa " << fq::to_string(isa));
    std::vector<Out> y(ref.size());
    fq::gemm_requant(a.data(), m, k, pw, std::int32_t{7}, pipe,
                     fq::GemmOutput<Out>{y.data(), n, 1, 0}, isa);
    REQUIRE(y == ref);
    // Transposed: element (i, j) at j * (m + 3) + i.
    std::vector<Out> t(static_cast<std::size_t>(n * (m + 3)), Out{42});
    fq::gemm_requant(a.data(), m, k, pw, std::int32_t{7}, pipe,
                     fq::GemmOutput<Out>{t.data(), 1, m + 3, 0}, isa);
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t i = 0; i < m + 3; ++i) {
        const Out got = t[static_cast<std::size_t>(j * (m + 3) + i)];
        const Out want = i < m ? ref[static_cast<std::size_t>(i * n + j)] : Out{42};
        if (got != want) {
          INFO("transposed output, row " << i << " column " << j);
          REQUIRE(int(got) == int(want));
        }
      }
  }
}

}  // namespace fq_kernels_test

#endif  // FQ_TESTS_KERNELS_GEMM_REQUANT_CHECK_HPP_
