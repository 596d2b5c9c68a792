// SPDX-License-Identifier: MIT
// Built with -fno-exceptions: a failed check reports through the handler, or prints and
// aborts. Run as `fq_no_exceptions default` or `fq_no_exceptions handler`.
#include <fakequant/core/fake_quantize.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
[[noreturn]] void report_and_exit(const fq::ErrorInfo& info) {
  std::printf("handler saw %s: %s\n", fq::to_string(info.code), info.message);
  std::fflush(stdout);
  std::_Exit(0);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "handler") == 0) fq::set_error_handler(&report_and_exit);
  std::vector<float> x(4, 1.0f), y(4);
  fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {4}),
                               fq::TensorView<float>(y.data(), {4}), nullptr, -1.0f, 0, {0, 255});
  std::printf("not reached\n");
  return 0;
}
