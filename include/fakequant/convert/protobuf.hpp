// SPDX-License-Identifier: MIT
// fakequant/convert/protobuf.hpp: a minimal Protocol Buffers wire-format writer
// (fq::detail::ProtoWriter) — what the ONNX exporter (convert/onnx.hpp) needs and nothing more:
// no reader, no schema, no zigzag (ONNX has no sint fields).
//
// Wire format (https://protobuf.dev/programming-guides/encoding/), all little-endian:
//   field     key then payload; key = varint((field_number << 3) | wire_type)
//   varint    wire type 0: 7 bits per byte, least significant group first, the top bit set on
//             every byte but the last (150 -> 96 01). A negative int32/int64/enum is its 64-bit
//             two's complement: always 10 bytes (-1 -> ff ff ff ff ff ff ff ff ff 01).
//   fixed64   wire type 1: 8 bytes (double, fixed64)
//   length-delimited  wire type 2: varint(byte length) then the bytes (string, bytes, a nested
//             message, a packed repeated field)
//   fixed32   wire type 5: 4 bytes (float: its IEEE-754 binary32 bits)
//   packed repeated   one length-delimited field holding the elements' payloads back to back,
//             without keys (varints, or 4-byte floats). Parsers accept a repeated scalar packed
//             or not, whatever the .proto declares (proto2 or proto3).
// A nested message is built in its own ProtoWriter and appended with message(): its length
// must be known before its bytes, and a copy per level is cheap next to the tensors it holds.
// Field numbers are in [1, 2^29 − 1] (else ErrorCode::kInvalidArgument); a message cannot exceed
// 2 GiB (protobuf's own limit), which the exporter checks on the whole model.
#ifndef FQ_CONVERT_PROTOBUF_HPP_
#define FQ_CONVERT_PROTOBUF_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // fixed-width integers
#include <cstring>  // memcpy
#include <string>   // string
#include <vector>   // vector

#include <fakequant/base/error.hpp>

namespace fq {
namespace detail {

/// Protobuf wire types (file comment).
enum class WireType : std::uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5
};

/// Appends protobuf fields to a byte buffer (file comment).
class ProtoWriter {
 public:
  /// varint field: uint64 as is; int64/int32/enum/bool through their 64-bit two's complement.
  void uint64(int field, std::uint64_t v) {
    key(field, WireType::kVarint);
    put_varint(v);
  }
  void int64(int field, std::int64_t v) { uint64(field, static_cast<std::uint64_t>(v)); }
  /// fixed32 field (a float's bits).
  void float32(int field, float v) {
    key(field, WireType::kFixed32);
    put_fixed(v);
  }
  /// fixed64 field (a double's bits).
  void float64(int field, double v) {
    key(field, WireType::kFixed64);
    put_fixed(v);
  }
  /// Length-delimited field of raw bytes (string, bytes).
  void bytes(int field, const void* p, std::size_t n) {
    key(field, WireType::kLengthDelimited);
    put_varint(n);
    const auto* b = static_cast<const std::uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void string(int field, const std::string& s) { bytes(field, s.data(), s.size()); }
  /// A nested message: length-delimited, its bytes those of `m`.
  void message(int field, const ProtoWriter& m) { bytes(field, m.buf_.data(), m.buf_.size()); }
  /// Packed repeated varints (int32/int64 elements as two's complement, as int64()).
  template <class Int>
  void packed_varints(int field, const Int* v, std::size_t n) {
    ProtoWriter payload;
    for (std::size_t i = 0; i < n; ++i) payload.put_varint(static_cast<std::uint64_t>(v[i]));
    message(field, payload);
  }
  /// Packed repeated floats: 4 bytes each.
  void packed_floats(int field, const float* v, std::size_t n) {
    bytes(field, v, n * sizeof(float));  // the host is little-endian (x86, ARM)
  }

  const std::vector<std::uint8_t>& buffer() const noexcept { return buf_; }
  std::vector<std::uint8_t>& buffer() noexcept { return buf_; }
  std::size_t size() const noexcept { return buf_.size(); }

  /// The key of a field: varint((field << 3) | wire type).
  void key(int field, WireType t) {
    FQ_CHECK(field >= 1 && field <= (1 << 29) - 1, ErrorCode::kInvalidArgument,
             msg("ProtoWriter: field number ", field, " is outside [1, 2^29 - 1]"));
    put_varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(t));
  }
  /// A bare varint (file comment).
  void put_varint(std::uint64_t v) {
    while (v >= 0x80u) {
      buf_.push_back(static_cast<std::uint8_t>((v & 0x7Fu) | 0x80u));
      v >>= 7;
    }
    buf_.push_back(static_cast<std::uint8_t>(v));
  }

 private:
  template <class T>
  void put_fixed(T v) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian host
    buf_.insert(buf_.end(), b, b + sizeof(T));
  }

  std::vector<std::uint8_t> buf_;
};

}  // namespace detail
}  // namespace fq

#endif  // FQ_CONVERT_PROTOBUF_HPP_
