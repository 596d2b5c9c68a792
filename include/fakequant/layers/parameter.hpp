// SPDX-License-Identifier: MIT
// fakequant/layers/parameter.hpp: Parameter — a layer's trainable tensor (value and gradient
// storage), its tape leaf and its view for the optimizers.
#ifndef FQ_LAYERS_PARAMETER_HPP_
#define FQ_LAYERS_PARAMETER_HPP_

#include <algorithm>  // copy, equal, fill
#include <cmath>      // sqrt
#include <cstddef>    // size_t
#include <cstdint>    // int64_t
#include <random>     // mt19937, uniform_real_distribution
#include <vector>     // vector

#include <fakequant/base/aligned.hpp>
#include <fakequant/base/checked.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// A parameter's values or gradient: a std::vector of floats that starts on a 64-byte
/// boundary (base/aligned.hpp: Eigen then takes the same code path for them wherever the heap
/// puts them, so a run is reproducible bit for bit, a resumed one included). It converts to
/// and from std::vector<float> by value; an assigned vector must keep the size (the shape).
class ParameterStorage : public std::vector<float, detail::Align64Allocator<float>> {
  using Base = std::vector<float, detail::Align64Allocator<float>>;

 public:
  using Base::Base;
  ParameterStorage() = default;
  /// Copies v's values in (kShapeMismatch if the size differs: the shape is the layer's).
  ParameterStorage& operator=(const std::vector<float>& v) {
    FQ_CHECK(v.size() == size(), ErrorCode::kShapeMismatch,
             detail::msg("Parameter: assigning ", v.size(), " values to a tensor of ", size()));
    std::copy(v.begin(), v.end(), begin());
    return *this;
  }
  /// A plain copy of the values.
  operator std::vector<float>() const {  // NOLINT(google-explicit-constructor)
    return std::vector<float>(begin(), end());
  }
  friend bool operator==(const ParameterStorage& a, const std::vector<float>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const std::vector<float>& a, const ParameterStorage& b) { return b == a; }
  friend bool operator!=(const ParameterStorage& a, const std::vector<float>& b) {
    return !(a == b);
  }
  friend bool operator!=(const std::vector<float>& a, const ParameterStorage& b) {
    return !(b == a);
  }
};

/// Value and gradient of one trainable tensor, owned by its layer.
class Parameter {
 public:
  Parameter() = default;
  Parameter(Shape shape, const char* name, bool weight_decay = true)
      : shape_(shape),
        value_(detail::checked_bytes(shape.numel(), sizeof(float), "Parameter") / sizeof(float),
               0.0f),
        grad_(value_.size(), 0.0f),
        name_(name),
        weight_decay_(weight_decay) {}

  /// PyTorch's default init for linear and conv layers: U(−1/√fan_in, 1/√fan_in).
  void init_uniform(std::mt19937& rng, std::int64_t fan_in) {
    FQ_CHECK(fan_in > 0, ErrorCode::kInvalidArgument,
             detail::msg("Parameter::init_uniform(", name_, "): fan_in must be > 0, got ", fan_in));
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    std::uniform_real_distribution<float> u(-bound, bound);
    for (float& v : value_) v = u(rng);
  }
  void fill(float v) { std::fill(value_.begin(), value_.end(), v); }

  /// The leaf of this parameter on `tape`; its gradient accumulates into grad().
  Var var(Tape& tape) { return tape.leaf(value_.data(), grad_.data(), shape_); }
  optim::ParamRef ref() {
    return {value_.data(), grad_.data(), value_.size(), weight_decay_, name_};
  }

  const Shape& shape() const noexcept { return shape_; }
  ParameterStorage& value() noexcept { return value_; }
  const ParameterStorage& value() const noexcept { return value_; }
  ParameterStorage& grad() noexcept { return grad_; }
  void zero_grad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

  /// The checkpoint state (base/state.hpp): the finite values; the shape must match. The
  /// gradient is not state (cleared before each backward).
  template <class V>
  void visit_state(V& v) {
    v.kind("parameter");
    v.config_array("shape", shape_.dims.data(), static_cast<std::size_t>(shape_.rank));
    v.state_span("value", value_.data(), value_.size(), state_finite());
  }

 private:
  Shape shape_;
  ParameterStorage value_, grad_;
  const char* name_ = "";
  bool weight_decay_ = true;
};

}  // namespace fq

#endif  // FQ_LAYERS_PARAMETER_HPP_
