// SPDX-License-Identifier: MIT
// Built with -fno-exceptions: a failed check reports through the handler, or prints and
// aborts. Run as `fq_no_exceptions default`, `fq_no_exceptions handler` or
// `fq_no_exceptions longjmp` (a handler that longjmps out, as the docs allow, 1000 times:
// under ASan/LSan a message string left alive on the error path would show as a leak).
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>

namespace {
[[noreturn]] void report_and_exit(const fq::ErrorInfo& info) {
  std::printf("handler saw %s: %s\n", fq::to_string(info.code), info.message);
  std::fflush(stdout);
  std::_Exit(0);
}

std::jmp_buf g_jump;
int g_seen = 0;
[[noreturn]] void jump_out(const fq::ErrorInfo& info) {
  if (info.code == fq::ErrorCode::kInvalidScale && std::strstr(info.message, "scale")) ++g_seen;
  std::longjmp(g_jump, 1);
}

// One failing call from a frame that owns nothing with a destructor, as the contract asks.
bool fails_with_jump(const float* x, float* y) {
  if (setjmp(g_jump) != 0) return true;
  fq::fake_quantize_per_tensor(fq::TensorView<const float>(x, {4}), fq::TensorView<float>(y, {4}),
                               nullptr, -1.0f, 0, {0, 255});
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "handler") == 0) fq::set_error_handler(&report_and_exit);
  std::vector<float> x(4, 1.0f), y(4);
  if (argc > 1 && std::strcmp(argv[1], "longjmp") == 0) {
    fq::set_error_handler(&jump_out);
    int jumped = 0;
    for (int i = 0; i < 1000; ++i) jumped += fails_with_jump(x.data(), y.data()) ? 1 : 0;
    std::printf("longjmp handler: %d of 1000 calls jumped back, %d messages seen\n", jumped,
                g_seen);
    return jumped == 1000 && g_seen == 1000 ? 0 : 1;
  }
  fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {4}),
                               fq::TensorView<float>(y.data(), {4}), nullptr, -1.0f, 0, {0, 255});
  std::printf("not reached\n");
  return 0;
}
