// SPDX-License-Identifier: MIT
// fakequant/convert/checkpoint.hpp: resumable QAT checkpoints — save_checkpoint(path, xs...)
// writes the whole training state of the objects xs (layers or a network of them, quantizers,
// optimizers, LR and QAT schedules, fq::TrainingProgress, fq::EngineState for a random
// engine), load_checkpoint(path, xs...) restores it into objects built the same way, so that
// a run stopped after epoch k and resumed continues bit for bit as if never stopped. Each
// object reports its state through visit_state(v) (the protocol: base/state.hpp); a user's
// network forwards to its members with v.child(name, member). Object i of the call is named
// "i", its entries "i.member.entry" (e.g. "0.conv.weight.value").
//
// File layout (version 1), all integers little-endian, floats IEEE-754:
//   magic     8 bytes  "FQCKPT\0\1"
//   version   u32      1
//   count     u32      number of entries
//   per entry, in the order visit_state reports them:
//     name    u32 length (1 to 1024), then that many bytes (no terminator)
//     role    u8       1 kind (the object's kind, a string), 2 config (must equal the loading
//                      object's own value), 3 state (restored)
//     type    u8       1 f32, 2 f64, 3 i32, 4 i64, 5 u32, 6 u64, 7 bool (u8, 0 or 1), 8 char
//     count   u64      elements (up to 2^31)
//     data    count elements of the type
//   crc32     u32      CRC-32 (IEEE 802.3, as zlib's) of every byte before it
// Loading reads the file (int8/file_io.hpp: a regular file of at most 4 GiB, else kIoError /
// kOutOfMemory), checks magic, checksum, version and every record's bounds, then walks the
// objects once to validate every entry against them — the same names in the same order, the
// same roles and types, kinds and configuration equal, state sizes as required (a fixed
// tensor's size, a vector's StateSize), state values within their StateCheck (no NaN in a
// parameter, no scale <= 0, no negative variance) — and only then walks them again to copy
// the state in. Any mismatch is ErrorCode::kInvalidArgument naming the entry (a truncated,
// corrupted or foreign file, or another architecture, scheme or optimizer), and no object
// has been changed. save_checkpoint refuses a state that a load would refuse (a NaN
// parameter: kNonFiniteInput; another value out of bounds: kInvalidArgument), writes to
// "path.tmp" and renames it over `path`, so an interrupted save leaves the last checkpoint.
// checkpoint_bytes / load_checkpoint_bytes do the same in memory.
#ifndef FQ_CONVERT_CHECKPOINT_HPP_
#define FQ_CONVERT_CHECKPOINT_HPP_

#include <array>         // array
#include <cstddef>       // size_t
#include <cstdint>       // fixed-width integers
#include <cstring>       // memcmp, memcpy
#include <filesystem>    // rename
#include <sstream>       // istringstream, ostringstream
#include <string>        // string, to_string
#include <system_error>  // error_code
#include <type_traits>   // is_same
#include <vector>        // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/convert/state_visitors.hpp>
#include <fakequant/int8/file_io.hpp>

namespace fq {

inline constexpr std::uint32_t kCheckpointVersion = detail::kCheckpointFileVersion;

namespace detail {
/// Bytes -> records, every bound checked (convert/checkpoint.hpp's file comment).
inline std::vector<StateEntry> parse_checkpoint(const std::vector<std::uint8_t>& bytes,
                                                const std::string& where) {
  FQ_CHECK(bytes.size() >= kCheckpointMagic.size() + 12, ErrorCode::kInvalidArgument,
           msg(where, ": truncated file (", bytes.size(), " bytes)"));
  FQ_CHECK(std::memcmp(bytes.data(), kCheckpointMagic.data(), kCheckpointMagic.size()) == 0,
           ErrorCode::kInvalidArgument, msg(where, ": not a fakequant checkpoint"));
  std::uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  FQ_CHECK(crc32(bytes.data(), bytes.size() - 4) == stored, ErrorCode::kInvalidArgument,
           msg(where, ": checksum mismatch (the file is corrupted or truncated)"));
  // The records lie in [pos, end): every read below is bounded by end - pos first.
  std::size_t pos = kCheckpointMagic.size();
  const std::size_t end = bytes.size() - 4;
  auto take = [&](std::size_t n, const char* what) {
    FQ_CHECK(n <= end - pos, ErrorCode::kInvalidArgument,
             msg(where, ": truncated file (reading ", what, " at byte ", pos, ")"));
    const std::uint8_t* p = bytes.data() + pos;
    pos += n;
    return p;
  };
  auto get = [&](auto zero, const char* what) {
    decltype(zero) v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  };
  const std::uint32_t version = get(std::uint32_t{}, "version");
  FQ_CHECK(
      version == kCheckpointFileVersion, ErrorCode::kInvalidArgument,
      msg(where, ": version ", version, ", this build reads version ", kCheckpointFileVersion));
  const std::uint32_t count = get(std::uint32_t{}, "entry count");
  std::vector<StateEntry> entries;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t len = get(std::uint32_t{}, "an entry name's length");
    FQ_CHECK(len >= 1 && len <= kMaxStateName, ErrorCode::kInvalidArgument,
             msg(where, ": entry ", i, " has a name of ", len, " bytes (corrupted file?)"));
    StateEntry e;
    const std::uint8_t* name = take(len, "an entry name");
    e.name.assign(reinterpret_cast<const char*>(name), len);
    const std::uint8_t role = get(std::uint8_t{}, "an entry role");
    const std::uint8_t type = get(std::uint8_t{}, "an entry type");
    e.count = get(std::uint64_t{}, "an entry's element count");
    FQ_CHECK(role >= 1 && role <= 3 && type >= 1 && type <= 9 && e.count <= kMaxStateElements,
             ErrorCode::kInvalidArgument,
             msg(where, ": entry ", i, " ('", e.name, "') has role ", int{role}, ", type ",
                 int{type}, " and ", e.count, " elements (corrupted file?)"));
    e.role = static_cast<StateRole>(role);
    e.type = static_cast<StateType>(type);
    const auto n = static_cast<std::size_t>(e.count);
    e.data = take(n * state_type_size(e.type), "an entry's elements");
    if (e.type == StateType::kBool)
      for (std::size_t k = 0; k < n; ++k)
        FQ_CHECK(e.data[k] <= 1, ErrorCode::kInvalidArgument,
                 msg(where, ": '", e.name, "' holds a bool that is neither 0 nor 1"));
    entries.push_back(std::move(e));
  }
  FQ_CHECK(pos == end, ErrorCode::kInvalidArgument,
           msg(where, ": ", end - pos, " bytes after the last entry (corrupted file?)"));
  return entries;
}

}  // namespace detail

/// Where the training loop is: epochs completed and optimizer steps taken (the t of an LR
/// schedule's lr_at and of QatSchedule::set_step). Save it with the rest.
struct TrainingProgress {
  std::int64_t epoch = 0;
  std::int64_t step = 0;
  template <class V>
  void visit_state(V& v) {
    v.kind("training_progress");
    v.state("epoch", epoch, state_non_negative());
    v.state("step", step, state_non_negative());
  }
};

/// A random engine's state (e.g. the std::mt19937 that shuffles the data), saved as the
/// engine's text form: fq::EngineState rng_state(rng).
template <class Engine>
class EngineState {
 public:
  explicit EngineState(Engine& e) noexcept : engine_(e) {}
  template <class V>
  void visit_state(V& v) {
    v.kind("random_engine");
    if constexpr (V::kPass == detail::StatePass::kSave) {
      std::ostringstream os;
      os << engine_;
      text_ = os.str();
    }
    v.state_text("engine", text_, &valid_text);
    if constexpr (V::kPass == detail::StatePass::kLoad) {
      std::istringstream is(text_);
      is >> engine_;
    }
  }

 private:
  static bool valid_text(const std::string& s) {
    std::istringstream is(s);
    Engine e;
    is >> e;
    return !is.fail();
  }
  Engine& engine_;
  std::string text_;
};

/// The checkpoint of xs... in memory (file comment).
template <class... Ts>
std::vector<std::uint8_t> checkpoint_bytes(Ts&... xs) {
  detail::StateSaver saver;
  std::size_t i = 0;
  (saver.child(std::to_string(i++).c_str(), xs), ...);
  return saver.finish();
}

namespace detail {
template <class... Ts>
void load_checkpoint_impl(const std::vector<std::uint8_t>& bytes, const std::string& where,
                          Ts&... xs) {
  const std::vector<StateEntry> entries = parse_checkpoint(bytes, where);
  StateChecker checker(entries, where);
  std::size_t i = 0;
  (checker.child(std::to_string(i++).c_str(), xs), ...);
  checker.finish();
  StateLoader loader(entries);
  i = 0;
  (loader.child(std::to_string(i++).c_str(), xs), ...);
}
}  // namespace detail

/// Restores xs... from a checkpoint in memory, all or nothing (file comment).
template <class... Ts>
void load_checkpoint_bytes(const std::vector<std::uint8_t>& bytes, Ts&... xs) {
  detail::load_checkpoint_impl(bytes, "load_checkpoint_bytes", xs...);
}

/// Writes the checkpoint of xs... to `path` (file comment).
template <class... Ts>
void save_checkpoint(const std::string& path, Ts&... xs) {
  const std::vector<std::uint8_t> bytes = checkpoint_bytes(xs...);
  const std::string tmp = path + ".tmp";
  detail::write_file_bytes(tmp, bytes, "save_checkpoint");
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  FQ_CHECK(
      !ec, ErrorCode::kIoError,
      detail::msg("save_checkpoint: cannot rename ", tmp, " to ", path, " (", ec.message(), ")"));
}

/// The scalar state entry `name` (e.g. "0.phase") of the checkpoint at `path`, the file
/// checked as load_checkpoint checks it: for a program that saves other objects at other
/// stages, to learn where it stopped before building the objects to load into. An entry of
/// another name, role, type or count is ErrorCode::kInvalidArgument.
template <class T>
T read_checkpoint_value(const std::string& path, const std::string& name) {
  const std::string where = detail::msg("read_checkpoint_value(", path, ")");
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, where);
  for (const detail::StateEntry& e : detail::parse_checkpoint(bytes, where))
    if (e.name == name) {
      FQ_CHECK(e.role == detail::StateRole::kState && e.type == detail::state_type_of<T>() &&
                   e.count == 1,
               ErrorCode::kInvalidArgument,
               detail::msg(where, ": '", name, "' is not a scalar state of type ",
                           detail::state_type_name(detail::state_type_of<T>())));
      return detail::state_element<T>(e.data, 0);
    }
  detail::fail(ErrorCode::kInvalidArgument, detail::msg(where, ": no entry '", name, "'"));
}

/// Restores xs... from the checkpoint at `path`, all or nothing (file comment).
template <class... Ts>
void load_checkpoint(const std::string& path, Ts&... xs) {
  const std::string where = detail::msg("load_checkpoint(", path, ")");
  detail::load_checkpoint_impl(detail::read_file_bytes(path, where), where, xs...);
}

}  // namespace fq

#endif  // FQ_CONVERT_CHECKPOINT_HPP_
