// SPDX-License-Identifier: MIT
// fakequant/convert/model_file.hpp: save and load converted integer layers (version 2; version
// 1 files, which lack the output range, are still read, with the range [0, 255]).
//
// File layout, all integers little-endian, floats IEEE-754 binary32:
//   magic     8 bytes  "FQINT8\0\1"
//   version   u32      2
//   count     u32      number of layers
//   per layer:
//     kind    u32      1 = Int8Linear, 2 = Int8Conv2d
//     flags   u32      bit 0: fused ReLU, bit 1: float output (linear only)
//     shape   12 × i64 linear: in_features, out_features, then zeros; conv: the fields of
//                      Conv2dShape in declaration order (batch, in_channels, in_h, in_w,
//                      out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, groups)
//     in      f32 scale, i32 zero point;   out  f32 scale, i32 zero point
//     range   i32 lo, i32 hi: the output levels' clamp (version 2; a fused ReLU6 lowers hi)
//     arrays  each a u64 element count then the elements: weight levels (i8), weight scales
//             (f32), bias (i32), real bias (f32), multipliers (i32 mantissa, i32 shift)
//   crc32     u32      CRC-32 (IEEE 802.3, as zlib's) of every byte before it
// A truncated file, a wrong magic or version, an inconsistent count, or a checksum mismatch is
// an ErrorCode::kInvalidArgument naming what is wrong; nothing is read past the end.
#ifndef FQ_CONVERT_MODEL_FILE_HPP_
#define FQ_CONVERT_MODEL_FILE_HPP_

#include <array>        // array
#include <cstdint>      // fixed-width integers
#include <cstring>      // memcpy
#include <fstream>      // ifstream, ofstream
#include <iterator>     // istreambuf_iterator
#include <string>       // string
#include <type_traits>  // is_trivially_copyable
#include <utility>      // move
#include <variant>      // variant
#include <vector>       // vector

#include <fakequant/convert/convert.hpp>

namespace fq {

/// One layer of a converted model.
using Int8Layer = std::variant<Int8Linear, Int8Conv2d>;

inline constexpr std::uint32_t kModelFileVersion = 2;

namespace detail {
inline constexpr std::array<char, 8> kModelMagic = {'F', 'Q', 'I', 'N', 'T', '8', '\0', '\1'};

inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

class ByteWriter {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable<T>::value, "ByteWriter: trivially copyable only");
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the library targets little-endian hosts (x86, ARM)
    bytes_.insert(bytes_.end(), b, b + sizeof(T));
  }
  template <class T>
  void put_array(const std::vector<T>& v) {
    put<std::uint64_t>(v.size());
    for (const T& e : v) put(e);
  }
  std::vector<std::uint8_t>& bytes() noexcept { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class ByteReader {
 public:
  ByteReader(const std::uint8_t* p, std::size_t n, std::string where)
      : p_(p), n_(n), where_(std::move(where)) {}
  template <class T>
  T get(const char* what) {
    FQ_CHECK(n_ - pos_ >= sizeof(T), ErrorCode::kInvalidArgument,
             msg(where_, ": truncated file (reading ", what, " at byte ", pos_, ")"));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_array(const char* what, std::uint64_t expect) {
    const auto n = get<std::uint64_t>(what);
    FQ_CHECK(n == expect, ErrorCode::kInvalidArgument,
             msg(where_, ": ", what, " has ", n, " elements, expected ", expect));
    std::vector<T> v;
    v.reserve(static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) v.push_back(get<T>(what));
    return v;
  }

 private:
  const std::uint8_t* p_;
  std::size_t n_, pos_ = 0;
  std::string where_;
};

inline void write_layer_params(ByteWriter& w, const Int8LayerParams& p) {
  w.put(p.in.scale);
  w.put(p.in.zero_point);
  w.put(p.out.scale);
  w.put(p.out.zero_point);
  w.put(p.out_min);
  w.put(p.out_max);
  w.put_array(p.weight);
  w.put_array(p.weight_scale);
  w.put_array(p.bias);
  w.put_array(p.real_bias);
  w.put<std::uint64_t>(p.multiplier.size());
  for (const QuantizedMultiplier& m : p.multiplier) {
    w.put(m.multiplier);
    w.put<std::int32_t>(m.shift);
  }
}

inline Int8LayerParams read_layer_params(ByteReader& r, std::uint32_t version, std::uint32_t flags,
                                         std::int64_t out, std::int64_t weights) {
  Int8LayerParams p;
  p.relu = (flags & 1u) != 0;
  p.float_out = (flags & 2u) != 0;
  p.in.scale = r.get<float>("input scale");
  p.in.zero_point = r.get<std::int32_t>("input zero point");
  p.out.scale = r.get<float>("output scale");
  p.out.zero_point = r.get<std::int32_t>("output zero point");
  if (version >= 2) {
    p.out_min = r.get<std::int32_t>("output range");
    p.out_max = r.get<std::int32_t>("output range");
  }
  FQ_CHECK(0 <= p.out_min && p.out_min <= p.out_max && p.out_max <= 255 &&
               (p.float_out || (p.out.zero_point >= p.out_min && p.out.zero_point <= p.out_max)),
           ErrorCode::kInvalidArgument,
           "load_int8_model: an output range or zero point is out of range (corrupted file?)");
  const auto o = static_cast<std::uint64_t>(out);
  p.weight = r.get_array<std::int8_t>("weights", static_cast<std::uint64_t>(weights));
  p.weight_scale = r.get_array<float>("weight scales", o);
  p.bias = r.get_array<std::int32_t>("bias", o);
  p.real_bias = r.get_array<float>("real bias", o);
  const auto nm = r.get<std::uint64_t>("multipliers");
  FQ_CHECK(nm == (p.float_out ? 0 : o), ErrorCode::kInvalidArgument,
           msg("load_int8_model: ", nm, " multipliers for ", o, " channels"));
  for (std::uint64_t i = 0; i < nm; ++i) {
    QuantizedMultiplier m;
    m.multiplier = r.get<std::int32_t>("multiplier");
    m.shift = r.get<std::int32_t>("shift");
    FQ_CHECK(m.shift >= -31 && m.shift <= 31 && m.multiplier >= 0, ErrorCode::kInvalidArgument,
             "load_int8_model: a multiplier is out of range (corrupted file?)");
    p.multiplier.push_back(m);
  }
  for (float s : p.weight_scale) check_scale(s, "load_int8_model");
  check_scale(p.in.scale, "load_int8_model");
  if (!p.float_out) check_scale(p.out.scale, "load_int8_model");
  return p;
}
}  // namespace detail

/// Writes the layers to `path` (format above).
inline void save_int8_model(const std::string& path, const std::vector<Int8Layer>& layers) {
  detail::ByteWriter w;
  for (char c : detail::kModelMagic) w.put(c);
  w.put(kModelFileVersion);
  w.put(static_cast<std::uint32_t>(layers.size()));
  for (const Int8Layer& l : layers) {
    std::array<std::int64_t, 12> shape{};
    const detail::Int8LayerParams* p;
    std::uint32_t kind;
    if (const auto* lin = std::get_if<Int8Linear>(&l)) {
      kind = 1;
      shape[0] = lin->in_features();
      shape[1] = lin->out_features();
      p = &lin->params();
    } else {
      const auto& conv = std::get<Int8Conv2d>(l);
      kind = 2;
      const Conv2dShape& s = conv.shape();
      shape = {s.batch,    s.in_channels, s.in_h,     s.in_w,  s.out_channels, s.kernel_h,
               s.kernel_w, s.stride_h,    s.stride_w, s.pad_h, s.pad_w,        s.groups};
      p = &conv.params();
    }
    w.put(kind);
    w.put(static_cast<std::uint32_t>((p->relu ? 1u : 0u) | (p->float_out ? 2u : 0u)));
    for (std::int64_t e : shape) w.put(e);
    detail::write_layer_params(w, *p);
  }
  w.put(detail::crc32(w.bytes().data(), w.bytes().size()));
  std::ofstream f(path, std::ios::binary);
  FQ_CHECK(static_cast<bool>(f), ErrorCode::kInvalidArgument,
           detail::msg("save_int8_model: cannot open ", path, " for writing"));
  f.write(reinterpret_cast<const char*>(w.bytes().data()),
          static_cast<std::streamsize>(w.bytes().size()));
  FQ_CHECK(static_cast<bool>(f), ErrorCode::kInvalidArgument,
           detail::msg("save_int8_model: writing ", path, " failed"));
}

/// Reads layers written by save_int8_model; see the file comment for the errors.
inline std::vector<Int8Layer> load_int8_model(const std::string& path) {
  const std::string where = "load_int8_model(" + path + ")";
  std::ifstream f(path, std::ios::binary);
  FQ_CHECK(static_cast<bool>(f), ErrorCode::kInvalidArgument, detail::msg(where, ": cannot open"));
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                        std::istreambuf_iterator<char>());
  FQ_CHECK(bytes.size() >= detail::kModelMagic.size() + 12, ErrorCode::kInvalidArgument,
           detail::msg(where, ": truncated file (", bytes.size(), " bytes)"));
  FQ_CHECK(std::memcmp(bytes.data(), detail::kModelMagic.data(), detail::kModelMagic.size()) == 0,
           ErrorCode::kInvalidArgument, detail::msg(where, ": not a fakequant int8 model file"));
  std::uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  FQ_CHECK(detail::crc32(bytes.data(), bytes.size() - 4) == stored, ErrorCode::kInvalidArgument,
           detail::msg(where, ": checksum mismatch (the file is corrupted or truncated)"));
  detail::ByteReader r(bytes.data() + detail::kModelMagic.size(),
                       bytes.size() - detail::kModelMagic.size() - 4, where);
  const auto version = r.get<std::uint32_t>("version");
  FQ_CHECK(version >= 1 && version <= kModelFileVersion, ErrorCode::kInvalidArgument,
           detail::msg(where, ": version ", version, ", this build reads versions 1 to ",
                       kModelFileVersion));
  const auto count = r.get<std::uint32_t>("layer count");
  std::vector<Int8Layer> layers;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto kind = r.get<std::uint32_t>("layer kind");
    const auto flags = r.get<std::uint32_t>("layer flags");
    std::array<std::int64_t, 12> s{};
    for (auto& e : s) e = r.get<std::int64_t>("layer shape");
    FQ_CHECK(kind == 1 || kind == 2, ErrorCode::kInvalidArgument,
             detail::msg(where, ": layer ", i, " has unknown kind ", kind));
    if (kind == 1) {
      FQ_CHECK(s[0] > 0 && s[1] > 0 && s[0] <= (1 << 24) && s[1] <= (1 << 24),
               ErrorCode::kInvalidArgument, detail::msg(where, ": layer ", i, " has a bad shape"));
      layers.emplace_back(
          Int8Linear(detail::read_layer_params(r, version, flags, s[1], s[0] * s[1]), s[0]));
    } else {
      const Conv2dShape cs{s[0], s[1], s[2], s[3], s[4],  s[5],
                           s[6], s[7], s[8], s[9], s[10], s[11]};
      detail::check_conv2d_shape(cs, "load_int8_model");
      const std::int64_t weights = cs.out_channels * cs.group_k();
      layers.emplace_back(
          Int8Conv2d(detail::read_layer_params(r, version, flags, cs.out_channels, weights), cs));
    }
  }
  return layers;
}

}  // namespace fq

#endif  // FQ_CONVERT_MODEL_FILE_HPP_
