// SPDX-License-Identifier: MIT
// examples/fashion_mnist_net.hpp: the Fashion-MNIST CNN demo's network (fashion_mnist_qat.cpp),
// shared with the benchmark of its deployed integer model (benchmarks/bm_int8_model.cpp):
// input fake-quant -> ConvBn(1->32, 3x3) ReLU -> max-pool 2 -> ConvBn(32->64, 3x3) ReLU ->
// max-pool 2 -> Linear(64*7*7 -> 128) ReLU -> Linear(128 -> 10), float logits.
#ifndef FQ_EXAMPLES_FASHION_MNIST_NET_HPP_
#define FQ_EXAMPLES_FASHION_MNIST_NET_HPP_

#include <algorithm>
#include <cstddef>
#include <random>
#include <vector>

#include <fakequant/convert/int8_model.hpp>
#include <fakequant/fakequant.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/optim/param.hpp>

namespace fmnist {

constexpr long kC1 = 32, kC2 = 64, kHidden = 128;

template <class WQ, class AQ = fq::DefaultActFakeQuant>
struct Net {
  explicit Net(std::mt19937& rng)
      : c1(1, kC1, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        c2(kC1, kC2, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU),
        fc1(kC2 * 7 * 7, kHidden, rng, fq::Activation::kReLU),
        fc2(kHidden, 10, rng) {}

  fq::Var forward(fq::Tape& t, const fq::Var& x) {
    fq::Var h = in.forward(t, x);
    h = pool.forward(t, c1.forward(t, h));
    h = pool.forward(t, c2.forward(t, h));
    h = fc1.forward(t, flatten.forward(t, h));
    return fc2.forward(t, h);
  }
  /// The deployed integer model: the same layers in the same order (fq::convert_sequential).
  fq::Int8Model convert() {
    return fq::convert_sequential(in, {1, 28, 28}, c1, pool, c2, pool, flatten, fc1, fc2);
  }
  std::vector<fq::optim::ParamRef> parameters() { return fq::parameters_of(c1, c2, fc1, fc2); }
  template <class F>
  void for_each_quantizer(F&& f) {
    fq::for_each_quantizer_of(f, in, c1, c2, fc1, fc2);
  }
  void train(bool on) {
    c1.train(on);
    c2.train(on);
  }
  template <class V>
  void visit_state(V& v) {
    v.child("in", in);
    v.child("c1", c1);
    v.child("c2", c2);
    v.child("fc1", fc1);
    v.child("fc2", fc2);
  }
  void set_quant(bool observe, bool fake_quant) {
    for_each_quantizer([&](auto& q) {
      q.enable_observer(observe);
      q.enable_fake_quant(fake_quant);
    });
  }
  /// Copies parameters and batch-norm statistics from a network of any scheme.
  template <class Other>
  void copy_from(Other& o) {
    auto dst = parameters(), src = o.parameters();
    for (std::size_t i = 0; i < dst.size(); ++i)
      std::copy_n(src[i].value, dst[i].size, dst[i].value);
    c1.running_mean() = o.c1.running_mean();
    c1.running_var() = o.c1.running_var();
    c2.running_mean() = o.c2.running_mean();
    c2.running_var() = o.c2.running_var();
  }

  fq::ActQuant<AQ> in;
  fq::QConvBn2d<WQ, AQ> c1, c2;
  fq::QLinear<WQ, AQ> fc1;
  fq::QLinear<WQ, fq::NoFakeQuant> fc2;  // logits stay float, as PyTorch's DeQuantStub
  fq::MaxPool2d pool{2};
  fq::Flatten flatten;
};

}  // namespace fmnist

#endif  // FQ_EXAMPLES_FASHION_MNIST_NET_HPP_
