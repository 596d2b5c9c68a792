// SPDX-License-Identifier: MIT
// fakequant/int8/flatten.hpp: Int8Flatten, the flatten step of an integer model —
// [d0, d1, ...] -> [d0·d1·...] per image: no work on contiguous NCHW memory, only the logical
// shape changes (what a linear layer after a convolution or a pooling takes).
#ifndef FQ_INT8_FLATTEN_HPP_
#define FQ_INT8_FLATTEN_HPP_

#include <fakequant/base/error.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {

/// Flattens each image to one dimension ([C, H, W] -> [C·H·W]): no work on contiguous NCHW
/// memory, only the logical shape changes (the step a linear layer after a conv needs).
class Int8Flatten {
 public:
  explicit Int8Flatten(const Shape& in) : in_(in) {
    bool ok = in.rank >= 1;
    for (int d = 0; d < in.rank; ++d) ok = ok && in[d] > 0;
    FQ_CHECK(ok, ErrorCode::kInvalidArgument,
             detail::msg("Int8Flatten: the input shape ", in.str(),
                         " must have rank >= 1 and extents > 0"));
  }
  const Shape& input_shape() const noexcept { return in_; }
  Shape output_shape() const { return {in_.numel()}; }

 private:
  Shape in_;
};

}  // namespace fq

#endif  // FQ_INT8_FLATTEN_HPP_
