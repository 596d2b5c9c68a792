// SPDX-License-Identifier: MIT
// tests/cmake/consumer_main.cpp: the program of the three downstream projects in
// tests/cmake/{find_package,add_subdirectory,fetch_content}; FQ_CONSUMER_HOW names the way
// each one got fakequant.
// Fake-quantizes a few floats with the uint8 per-tensor affine preset (s = 0.1, z = 3) and
// checks the outputs and the STE mask; exits non-zero on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include <fakequant/fakequant.hpp>

int main() {
  const char* const how = FQ_CONSUMER_HOW;
  std::printf("fakequant %d.%d.%d via %s (xsimd: %d)\n", FQ_VERSION_MAJOR, FQ_VERSION_MINOR,
              FQ_VERSION_PATCH, how, FQ_HAS_XSIMD);
#ifdef FQ_CONSUMER_PACKAGE_VERSION
  // The version find_package() reported must be the one in the installed headers.
  char header_version[32];
  std::snprintf(header_version, sizeof header_version, "%d.%d.%d", FQ_VERSION_MAJOR,
                FQ_VERSION_MINOR, FQ_VERSION_PATCH);
  if (std::string_view(header_version) != FQ_CONSUMER_PACKAGE_VERSION) {
    std::printf("FAIL: package version %s != header version %s\n", FQ_CONSUMER_PACKAGE_VERSION,
                header_version);
    return 1;
  }
#endif

  const float scale = 0.1f;
  const std::int32_t zero_point = 3;
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> q;
  q.set_qparams(scale, zero_point);

  // q = clamp(round(x / s) + z, 0, 255); y = (q - z) * s.
  // 1.25 / 0.1 = 12.5 exactly in float: ties to even gives 12.
  const std::vector<float> x = {0.26f, 100.0f, -1.0f, 0.0f, 0.04f, 1.25f};
  const std::vector<float> expect = {3 * scale, (255 - 3) * scale, (0 - 3) * scale, 0.0f,
                                     0.0f,      12 * scale};
  const std::vector<bool> expect_mask = {true, false, false, true, true, true};
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<float> y(x.size(), -42.0f);
  fq::Mask mask;
  q.forward(fq::TensorView<const float>(x.data(), {n}), fq::TensorView<float>(y.data(), {n}),
            &mask);

  int failures = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool ok = std::fabs(y[i] - expect[i]) <= 1e-6f;
    const bool mask_ok = mask.test_linear(static_cast<std::int64_t>(i)) == expect_mask[i];
    if (!ok || !mask_ok) {
      std::printf("FAIL: x=%g -> y=%.9g (expected %.9g), mask=%d (expected %d)\n", x[i], y[i],
                  expect[i], int(mask.test_linear(static_cast<std::int64_t>(i))),
                  int(expect_mask[i]));
      ++failures;
    }
  }
  if (mask.numel() != n) {
    std::printf("FAIL: mask covers %lld elements, expected %lld\n",
                static_cast<long long>(mask.numel()), static_cast<long long>(n));
    ++failures;
  }
  if (failures == 0) std::printf("ok: 0.26 -> %g, 100 -> %g\n", y[0], y[1]);
  return failures == 0 ? 0 : 1;
}
