// SPDX-License-Identifier: MIT
// examples/libtorch_interop.cpp: fakequant's kernels inside LibTorch's autograd.
//
// FqFakeQuantPerTensor and FqFakeQuantPerChannel are torch::autograd::Function subclasses:
// forward runs fq::fake_quantize_per_tensor / _per_channel on the tensor's own float storage
// through fq::TensorView (zero-copy, any strides) and keeps fakequant's 1-bit mask; backward
// applies the straight-through estimator dx = dy * mask with fq::fake_quantize_backward.
//   forward:  y = (clamp(round(x * f32(1/s)) + z, quant_min, quant_max) - z) * s
//   backward: dx = dy where quant_min <= round(x * f32(1/s)) + z <= quant_max, else 0
// fakequant's default numerics are PyTorch 1.13's, so the program checks outputs and input
// gradients against ATen's torch::fake_quantize_per_tensor_affine and
// torch::fake_quantize_per_channel_affine bit for bit (contiguous and transposed inputs, ties,
// clamped values), then prints a timing table (one thread for both libraries; a rough
// timing, not a benchmark: benchmarks/ has those). It exits non-zero on any mismatch.
// Usage: libtorch_interop [--full]   (--full: larger tensors and more repetitions)
// Built only when CMake finds Torch (Debian: libtorch-dev).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <torch/autograd.h>
#include <torch/custom_class.h>
#include <torch/version.h>

#include <fakequant/kernels/fake_quantize.hpp>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// A zero-copy fakequant view of a CPU float tensor (its sizes and strides, in elements).
template <class T>
fq::TensorView<T> view_of(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.device().is_cpu(),
              "fakequant interop: expected a CPU float tensor");
  TORCH_CHECK(t.dim() >= 1 && t.dim() <= fq::kMaxRank, "fakequant interop: unsupported rank");
  return fq::TensorView<T>(t.data_ptr<float>(), static_cast<int>(t.dim()), t.sizes().data(),
                           t.strides().data());
}

/// The forward's mask, kept in the autograd context until backward (1 bit per element).
struct SavedMask : torch::CustomClassHolder {
  fq::Mask mask;
};
// IValue holds custom C++ objects only if their class is registered.
const auto kSavedMaskClass = torch::class_<SavedMask>("fakequant_example", "SavedMask");

at::Tensor ste_backward(AutogradContext* ctx, const at::Tensor& dy) {
  const auto saved = ctx->saved_data["mask"].toCustomClass<SavedMask>();
  at::Tensor dx = at::empty_like(dy);
  fq::fake_quantize_backward(view_of<const float>(dy), saved->mask, view_of<float>(dx));
  return dx;
}

struct FqFakeQuantPerTensor : torch::autograd::Function<FqFakeQuantPerTensor> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double scale,
                            int64_t zero_point, int64_t quant_min, int64_t quant_max) {
    at::Tensor y = at::empty_like(x);  // same strides as x (preserve_format)
    auto saved = c10::make_intrusive<SavedMask>();
    fq::fake_quantize_per_tensor(view_of<const float>(x), view_of<float>(y), &saved->mask,
                                 static_cast<float>(scale), static_cast<std::int32_t>(zero_point),
                                 fq::QuantRange{quant_min, quant_max});
    ctx->saved_data["mask"] = saved;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list dy) {
    return {ste_backward(ctx, dy[0]), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct FqFakeQuantPerChannel : torch::autograd::Function<FqFakeQuantPerChannel> {
  /// scale: float [C]; zero_point: int32 [C]; C = x.size(axis). Their storage is read in
  /// place too (made contiguous first if needed).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, int64_t axis, int64_t quant_min,
                            int64_t quant_max) {
    TORCH_CHECK(scale.scalar_type() == at::kFloat && zero_point.scalar_type() == at::kInt,
                "fakequant interop: scale must be float32 and zero_point int32");
    const at::Tensor s = scale.contiguous(), z = zero_point.contiguous();
    at::Tensor y = at::empty_like(x);
    auto saved = c10::make_intrusive<SavedMask>();
    fq::fake_quantize_per_channel(view_of<const float>(x), view_of<float>(y), &saved->mask,
                                  s.data_ptr<float>(), z.data_ptr<std::int32_t>(), s.numel(),
                                  static_cast<int>(axis), fq::QuantRange{quant_min, quant_max});
    ctx->saved_data["mask"] = saved;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list dy) {
    return {ste_backward(ctx, dy[0]),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

/// Bit-for-bit equality of two float tensors of the same shape (any strides).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() &&
         at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

/// Test data: normal values around the quantization range, plus exact ties (k + 1/2) * s and
/// values far outside the range (clamped, zero gradient).
at::Tensor make_input(at::IntArrayRef shape, double scale) {
  at::Tensor x = at::randn(shape) * (100.0 * scale);
  at::Tensor flat = x.view(-1);
  const int64_t n = flat.numel();
  for (int64_t i = 0; i < n; i += 7) flat[i] = (static_cast<double>(i % 301) - 150.5) * scale;
  for (int64_t i = 3; i < n; i += 97) flat[i] = (i % 2 ? 1e4 : -1e4) * scale;
  return x;
}

struct Case {
  std::string name;
  std::function<at::Tensor(const at::Tensor&)> ours, aten;
};

/// Checks forward outputs and input gradients of both paths on x (may be non-contiguous).
bool check(const Case& c, const at::Tensor& x_in, const char* layout) {
  const at::Tensor dy = at::randn(x_in.sizes());
  at::Tensor grads[2], outs[2];
  for (int k = 0; k < 2; ++k) {
    at::Tensor x = x_in.detach().clone(at::MemoryFormat::Preserve).requires_grad_(true);
    outs[k] = k == 0 ? c.ours(x) : c.aten(x);
    outs[k].backward(dy);
    grads[k] = x.grad();
  }
  const bool ok = same_bits(outs[0], outs[1]) && same_bits(grads[0], grads[1]);
  std::printf("  %-44s %-10s forward %s, gradient %s\n", c.name.c_str(), layout,
              same_bits(outs[0], outs[1]) ? "bit-exact" : "MISMATCH",
              same_bits(grads[0], grads[1]) ? "bit-exact" : "MISMATCH");
  return ok;
}

/// Median wall time of f over `reps` runs, in microseconds.
double time_us(const std::function<void()>& f, int reps) {
  std::vector<double> t;
  f();  // warm-up
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[static_cast<std::size_t>(reps / 2)];
}

}  // namespace

int main(int argc, char** argv) {
  const bool full = argc > 1 && std::strcmp(argv[1], "--full") == 0;
  at::manual_seed(0);
  at::set_num_threads(1);  // fakequant's kernels are single-threaded: compare like with like

  const double s = 0.02;
  const int64_t z = 3, qmin = 0, qmax = 255, axis = 1;
  const Case per_tensor{
      "per-tensor uint8 (s=0.02, z=3)",
      [&](const at::Tensor& x) { return FqFakeQuantPerTensor::apply(x, s, z, qmin, qmax); },
      [&](const at::Tensor& x) {
        return at::fake_quantize_per_tensor_affine(x, s, z, qmin, qmax);
      }};
  const auto channel_case = [&](int64_t channels) {
    at::Tensor cs = at::rand({channels}) * 0.03 + 0.005;
    at::Tensor cz = at::randint(-128, 128, {channels}, at::kInt);
    return Case{"per-channel int8 (axis 1, " + std::to_string(channels) + " channels)",
                [=](const at::Tensor& x) {
                  return FqFakeQuantPerChannel::apply(x, cs, cz, axis, -128, 127);
                },
                [=](const at::Tensor& x) {
                  return at::fake_quantize_per_channel_affine(x, cs, cz, axis, -128, 127);
                }};
  };

  std::printf("fakequant inside torch::autograd::Function vs ATen (LibTorch %s)\n", TORCH_VERSION);
  bool ok = true;
  {
    const at::Tensor x = make_input({8, 16, 9, 11}, s);
    const Case pc = channel_case(16);
    for (const Case* c : {&per_tensor, &pc}) {
      ok = check(*c, x, "NCHW") && ok;
      ok = check(*c, x.transpose(2, 3), "transposed") && ok;
      ok = check(*c, x.contiguous(at::MemoryFormat::ChannelsLast), "NHWC") && ok;
    }
  }

  std::printf("\nMedian time per call, 1 thread, microseconds (ratio = ATen / fakequant)\n");
  std::printf("| %-44s | %10s | %10s | %10s | %6s | %10s | %10s | %6s |\n", "case", "elements",
              "fwd fq", "fwd ATen", "ratio", "f+b fq", "f+b ATen", "ratio");
  const std::vector<std::vector<int64_t>> shapes =
      full ? std::vector<std::vector<int64_t>>{{16, 64, 32, 32}, {64, 256, 28, 28}, {4096, 4096}}
           : std::vector<std::vector<int64_t>>{{4, 64, 16, 16}, {16, 64, 32, 32}};
  const int reps = full ? 21 : 5;
  for (const auto& shape : shapes) {
    const at::Tensor x = make_input(shape, s);
    const Case pc = channel_case(shape[1]);
    for (const Case* c : {&per_tensor, &pc}) {
      at::Tensor xg = x.detach().clone().requires_grad_(true);
      const at::Tensor dy = at::ones_like(x);
      double t[4];
      for (int k = 0; k < 2; ++k) {
        const auto& f = k == 0 ? c->ours : c->aten;
        t[k] = time_us(
            [&] {
              at::NoGradGuard no_grad;
              f(x);
            },
            reps);
        t[2 + k] = time_us(
            [&] {
              f(xg).backward(dy);
              xg.mutable_grad().reset();
            },
            reps);
      }
      std::printf("| %-44s | %10lld | %10.1f | %10.1f | %6.2f | %10.1f | %10.1f | %6.2f |\n",
                  c->name.c_str(), static_cast<long long>(x.numel()), t[0], t[1], t[1] / t[0], t[2],
                  t[3], t[3] / t[2]);
    }
  }
  std::printf("\n%s\n",
              ok ? "all outputs and gradients bit-exact against ATen" : "MISMATCH against ATen");
  return ok ? 0 : 1;
}
