// SPDX-License-Identifier: MIT
// fakequant/layers/pool.hpp: the shape layers of a sequential network — MaxPool2d (k × k
// window, stride s, no padding: fq::ops::max_pool2d) and Flatten ([N, ...] -> [N, rest], a
// reshape). They run on the tape like the QAT layers, and fq::convert_sequential
// (convert/int8_model.hpp) turns them into the integer model's Int8MaxPool2d and Int8Flatten
// steps, so the same objects describe the training network and the deployed one.
#ifndef FQ_LAYERS_POOL_HPP_
#define FQ_LAYERS_POOL_HPP_

#include <cstdint>  // int64_t

#include <fakequant/base/error.hpp>
#include <fakequant/ops/pool.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// A max pooling between the layers given to convert_sequential (k×k window, stride s; 0: k),
/// which also runs on the tape, so the same object can describe the training network.
struct MaxPool2d {
  std::int64_t kernel = 0;
  std::int64_t stride = 0;
  Var forward(Tape& tape, const Var& x) const { return ops::max_pool2d(tape, x, kernel, stride); }
};

/// A flatten between the layers given to convert_sequential; on the tape, [N, ...] -> [N, rest]
/// (a reshape, no copy).
struct Flatten {
  static Var forward(Tape& /*tape*/, const Var& x) {
    FQ_CHECK(x.shape().rank >= 1, ErrorCode::kShapeMismatch,
             "Flatten: a scalar has no batch dimension");
    std::int64_t rest = 1;
    for (int d = 1; d < x.shape().rank; ++d) rest *= x.size(d);
    return x.reshape({x.size(0), rest});
  }
};

}  // namespace fq

#endif  // FQ_LAYERS_POOL_HPP_
