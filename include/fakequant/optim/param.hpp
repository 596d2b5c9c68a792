// SPDX-License-Identifier: MIT
// fakequant/optim/param.hpp: ParamRef, the view of one trainable parameter that layers hand to
// the optimizers, and the checks every optimizer applies to a list of them.
//
// A ParamRef points at a value array and a gradient array of the same length, both owned by
// the layer. Optimizers read `grad` and update `value` in place; they keep their own state
// (momentum buffers, Adam moments) sized from the list given at construction.
//
// parameters_of(xs...) / append_parameters(out, x) build that list, the one way to do it:
// for a quantizer with learnable parameters (visit_parameters(f), quantizer/concept.hpp) one
// ParamRef per f(name, value, grad) call, with weight_decay = false (scales, zero points and
// clipping levels are not decayed) and the visitor's name; for a layer (parameters()) its list;
// for anything else (a quantizer without parameters) nothing.
#ifndef FQ_OPTIM_PARAM_HPP_
#define FQ_OPTIM_PARAM_HPP_

#include <algorithm>    // fill_n
#include <cmath>        // isfinite
#include <cstddef>      // size_t
#include <cstdint>      // uint64_t
#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/quantizer/concept.hpp>

namespace fq {
namespace optim {

/// A trainable parameter: views over memory owned by the layer (never owned here).
struct ParamRef {
  float* value;              ///< `size` parameter values, updated in place by step()
  float* grad;               ///< `size` gradients, read by step(), cleared by zero_grad()
  std::size_t size;          ///< element count; 0 is allowed (the parameter is skipped)
  bool weight_decay = true;  ///< false exempts it (biases, norm scales) from weight decay
  const char* name = "";     ///< for error messages
};

namespace detail {

/// Every non-empty parameter needs non-null value and gradient pointers.
inline void check_param_list(const std::vector<ParamRef>& params, const char* where) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    const ParamRef& p = params[i];
    FQ_CHECK(p.size == 0 || (p.value != nullptr && p.grad != nullptr), ErrorCode::kInvalidArgument,
             ::fq::detail::msg(where, ": parameter ", i, " ('", p.name ? p.name : "", "') of size ",
                               p.size, " has a null value or gradient pointer"));
  }
}

/// The list given to step() must match the one the optimizer was built for, size for size
/// (its state is laid out from those sizes).
inline void check_same_layout(const std::vector<ParamRef>& built, const std::vector<ParamRef>& now,
                              const char* where) {
  FQ_CHECK(built.size() == now.size(), ErrorCode::kParamCountMismatch,
           ::fq::detail::msg(where, ": the optimizer was built for ", built.size(),
                             " parameters, step() got ", now.size()));
  for (std::size_t i = 0; i < now.size(); ++i)
    FQ_CHECK(built[i].size == now[i].size, ErrorCode::kShapeMismatch,
             ::fq::detail::msg(where, ": parameter ", i, " ('", now[i].name ? now[i].name : "",
                               "') had ", built[i].size, " elements at construction, now ",
                               now[i].size));
  check_param_list(now, where);
}

/// A hyper-parameter that must be finite and >= 0.
inline void check_non_negative(double v, const char* what, const char* where) {
  FQ_CHECK(std::isfinite(v) && v >= 0.0, ErrorCode::kInvalidArgument,
           ::fq::detail::msg(where, ": ", what, " must be finite and >= 0, got ", v));
}

/// A decay rate that must lie in [0, 1).
inline void check_unit_interval(double v, const char* what, const char* where) {
  FQ_CHECK(v >= 0.0 && v < 1.0, ErrorCode::kInvalidArgument,
           ::fq::detail::msg(where, ": ", what, " must be in [0, 1), got ", v));
}

/// Total element count of a list.
inline std::size_t total_size(const std::vector<ParamRef>& params) noexcept {
  std::size_t n = 0;
  for (const ParamRef& p : params) n += p.size;
  return n;
}

/// Reports the layout of an optimizer's parameter list as configuration (base/state.hpp): a
/// checkpoint loads only into an optimizer built for the same sizes, in the same order.
template <class V>
void visit_param_layout(V& v, const std::vector<ParamRef>& params) {
  std::vector<std::uint64_t> sizes;
  sizes.reserve(params.size());
  for (const ParamRef& p : params) sizes.push_back(p.size);
  v.config_array("param_sizes", sizes.data(), sizes.size());
}

}  // namespace detail

namespace detail {
template <class L, class = void>
struct has_parameter_list : std::false_type {};
template <class L>
struct has_parameter_list<L, std::void_t<decltype(std::declval<L&>().parameters())>>
    : std::true_type {};
}  // namespace detail

/// Appends the parameters of x (a quantizer or a layer; file comment) to out.
template <class T>
void append_parameters(std::vector<ParamRef>& out, T& x) {
  if constexpr (has_learnable_parameters_v<T>) {
    x.visit_parameters([&out](const char* name, TensorView<float> value, TensorView<float> grad) {
      FQ_CHECK(value.numel() == grad.numel() && value.is_contiguous() && grad.is_contiguous(),
               ErrorCode::kInvalidLayout,
               ::fq::detail::msg("parameters_of: parameter '", name ? name : "",
                                 "' needs contiguous value and gradient of one size, got ",
                                 value.numel(), " and ", grad.numel(), " elements"));
      out.push_back(
          {value.data(), grad.data(), static_cast<std::size_t>(value.numel()), false, name});
    });
  } else if constexpr (detail::has_parameter_list<T>::value) {
    for (const ParamRef& p : x.parameters()) out.push_back(p);
  }
}

/// The parameters of several quantizers or layers, in order (file comment).
template <class... Ts>
std::vector<ParamRef> parameters_of(Ts&... xs) {
  std::vector<ParamRef> all;
  (append_parameters(all, xs), ...);
  return all;
}

/// Sets every gradient of the list to zero.
inline void zero_grad(const std::vector<ParamRef>& params) noexcept {
  for (const ParamRef& p : params)
    if (p.size != 0 && p.grad != nullptr) std::fill_n(p.grad, p.size, 0.0f);
}

}  // namespace optim
}  // namespace fq

#endif  // FQ_OPTIM_PARAM_HPP_
