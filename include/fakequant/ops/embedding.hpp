// SPDX-License-Identifier: MIT
// fakequant/ops/embedding.hpp: embedding — a table lookup by token id on a Tape.
//
// Forward: table [V, D], ids (int32) of shape ids_shape -> y [ids_shape..., D],
//   y[p, :] = table[ids[p], :] (a row copy; PyTorch F.embedding without padding_idx/max_norm).
// Gradient: scatter-add, dtable[ids[p], :] += dy[p, :] for every position p in order, so a
//   repeated id accumulates every occurrence (a dense gradient, as sparse=False).
// An id outside [0, V) is refused at op creation (ErrorCode::kInvalidArgument, naming the
// position and the id) before anything is recorded. The ids are copied to the tape's scratch
// memory when a backward is recorded, so the caller's buffer may change after the call.
#ifndef FQ_OPS_EMBEDDING_HPP_
#define FQ_OPS_EMBEDDING_HPP_

#include <cstdint>  // int32_t, int64_t
#include <cstring>  // memcpy
#include <string>   // string

#include <Eigen/Core>

#include <fakequant/base/checked.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// The multi-index of linear position p in `s`, e.g. "[1, 2]" (for error messages).
inline std::string position_string(const Shape& s, std::int64_t p) {
  Shape idx = s;
  for (int d = s.rank - 1; d >= 0; --d) {
    const auto k = static_cast<std::size_t>(d);
    idx.dims[k] = s.dims[k] > 0 ? p % s.dims[k] : 0;
    p = s.dims[k] > 0 ? p / s.dims[k] : 0;
  }
  return idx.str();
}
}  // namespace impl

/// y[p, :] = table[ids[p], :] for every position p of `ids_shape` (file comment).
inline Var embedding(Tape& tape, const Var& table, const std::int32_t* ids, Shape ids_shape) {
  fq::detail::check_tape(tape, {&table}, "embedding");
  FQ_CHECK(table.shape().rank == 2, ErrorCode::kShapeMismatch,
           fq::detail::msg("embedding: table ", table.shape().str(), " must be [V, D]"));
  FQ_CHECK(ids_shape.rank < Shape::kMaxRank, ErrorCode::kInvalidLayout,
           fq::detail::msg("embedding: ids ", ids_shape.str(), " have rank ", ids_shape.rank,
                           "; the output adds an axis, and ranks stop at ", Shape::kMaxRank));
  const std::int64_t count = ids_shape.numel();
  FQ_CHECK(ids != nullptr || count == 0, ErrorCode::kInvalidArgument,
           fq::detail::msg("embedding: ids is null for ", count, " positions"));
  const std::int64_t v = table.size(0), d = table.size(1);
  Shape out = ids_shape;
  out.dims[static_cast<std::size_t>(out.rank++)] = d;
  fq::detail::checked_numel(out.dims.data(), out.rank, "embedding");
  const bool need = fq::detail::needs_grad(tape, {&table});
  Var y = tape.variable(out, need);
  // The backward reads the ids after this call returns: keep a copy on the tape.
  std::int32_t* kept = need ? tape.scratch<std::int32_t>(static_cast<std::size_t>(count)) : nullptr;
  const auto row_bytes = static_cast<std::size_t>(d) * sizeof(float);
  for (std::int64_t p = 0; p < count; ++p) {
    const std::int32_t id = ids[p];
    FQ_CHECK(id >= 0 && id < v, ErrorCode::kInvalidArgument,
             fq::detail::msg("embedding: id ", id, " at position ", p, " ",
                             impl::position_string(ids_shape, p), " is outside [0, ", v,
                             ") of table ", table.shape().str()));
    if (kept) kept[p] = id;
    if (d > 0) std::memcpy(y.value() + p * d, table.value() + std::int64_t{id} * d, row_bytes);
  }
  if (need && count > 0 && d > 0)
    tape.push_backward([table, y, kept, count, d] {
      using Row = Eigen::Map<Eigen::ArrayXf>;
      for (std::int64_t p = 0; p < count; ++p)
        Row(table.grad() + std::int64_t{kept[p]} * d, d) += Row(y.grad() + p * d, d);
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_EMBEDDING_HPP_
