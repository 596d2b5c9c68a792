// SPDX-License-Identifier: MIT
// fakequant/tape/custom_op.hpp: custom_op, a user's own kernel on the tape in one call (after
// Stan Math's one-call custom gradient). The forward runs now; the backward closure, copied
// into the tape's arena, runs during Tape::backward and accumulates (+=) into the gradients
// of the inputs that have one. The testing kit checks such a gradient numerically
// (testing/check_op_gradients.hpp).
#ifndef FQ_TAPE_CUSTOM_OP_HPP_
#define FQ_TAPE_CUSTOM_OP_HPP_

#include <initializer_list>  // initializer_list
#include <utility>           // forward

#include <fakequant/tape/tape.hpp>

namespace fq {

/// Registers a user's own kernel on the tape in one call.
///
///   Var y = fq::custom_op(tape, {x, w}, out_shape,
///       [&](float* y) { my_forward(x.value(), w.value(), y); },
///       [=](const float* y, const float* dy) {   // accumulate into the inputs' gradients
///         if (x.grad()) my_backward_x(dy, w.value(), x.grad());
///         if (w.grad()) my_backward_w(dy, x.value(), w.grad());
///       });
///
/// `forward(float* y)` fills the output (numel of `shape`, row-major); `backward(y, dy)`
/// runs during Tape::backward with the output value and its gradient and must add (+=) into
/// the gradients of the inputs that have one. It is copied into the arena: capture Vars and
/// small values by value, not references to locals.
template <class Forward, class Backward>
Var custom_op(Tape& tape, std::initializer_list<Var> inputs, Shape shape, Forward&& forward,
              Backward&& backward) {
  bool need = false;
  for (const Var& v : inputs) {
    detail::check_var(tape, v, "custom_op");
    need = need || v.requires_grad();
  }
  need = need && tape.recording();
  Var y = tape.variable(shape, need);
  forward(y.value());
  if (need)
    tape.push_backward([y, bw = std::forward<Backward>(backward)]() mutable {
      bw(static_cast<const float*>(y.value()), static_cast<const float*>(y.grad()));
    });
  return y;
}

}  // namespace fq

#endif  // FQ_TAPE_CUSTOM_OP_HPP_
