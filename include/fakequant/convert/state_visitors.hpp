// SPDX-License-Identifier: MIT
// fakequant/convert/state_visitors.hpp: the records of a checkpoint file and the three walks
// over the objects' visit_state (base/state.hpp) that convert/checkpoint.hpp runs — the saver
// (objects -> records), the checker (parsed records vs objects, writes nothing) and the loader
// (records -> objects, run only after the checker passed). The file layout, its parsing and
// the errors: convert/checkpoint.hpp.
#ifndef FQ_CONVERT_STATE_VISITORS_HPP_
#define FQ_CONVERT_STATE_VISITORS_HPP_

#include <array>        // array
#include <cmath>        // isfinite
#include <cstddef>      // size_t
#include <cstdint>      // fixed-width integers
#include <cstring>      // memcmp, memcpy, strlen
#include <map>          // map
#include <string>       // string
#include <type_traits>  // is_same
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/int8/file_io.hpp>

namespace fq {
namespace detail {

inline constexpr std::array<char, 8> kCheckpointMagic = {'F', 'Q', 'C', 'K', 'P', 'T', '\0', '\1'};
inline constexpr std::uint32_t kCheckpointFileVersion = 1;
/// The longest entry name and the most elements of one entry a checkpoint may hold.
inline constexpr std::size_t kMaxStateName = 1024;
inline constexpr std::uint64_t kMaxStateElements = std::uint64_t{1} << 31;

/// Which walk a visitor is (an object whose state has another form, e.g. a random engine's
/// text, converts before a save and after a load).
enum class StatePass { kSave, kCheck, kLoad };
enum class StateRole : std::uint8_t { kKind = 1, kConfig = 2, kState = 3 };
enum class StateType : std::uint8_t { kF32 = 1, kF64, kI32, kI64, kU32, kU64, kBool, kChar, kU8 };

template <class T>
constexpr StateType state_type_of() {
  if constexpr (std::is_same<T, float>::value)
    return StateType::kF32;
  else if constexpr (std::is_same<T, double>::value)
    return StateType::kF64;
  else if constexpr (std::is_same<T, std::int32_t>::value)
    return StateType::kI32;
  else if constexpr (std::is_same<T, std::int64_t>::value)
    return StateType::kI64;
  else if constexpr (std::is_same<T, std::uint32_t>::value)
    return StateType::kU32;
  else if constexpr (std::is_same<T, std::uint64_t>::value)
    return StateType::kU64;
  else if constexpr (std::is_same<T, bool>::value)
    return StateType::kBool;
  else if constexpr (std::is_same<T, char>::value)
    return StateType::kChar;
  else if constexpr (std::is_same<T, std::uint8_t>::value)
    return StateType::kU8;
  else
    static_assert(std::is_same<T, float>::value,
                  "checkpoint: state elements are float, double, int32, int64, uint32, uint64, "
                  "uint8, bool or char (base/state.hpp).");
}
inline std::size_t state_type_size(StateType t) noexcept {
  switch (t) {
    case StateType::kF64:
    case StateType::kI64:
    case StateType::kU64:
      return 8;
    case StateType::kBool:
    case StateType::kChar:
    case StateType::kU8:
      return 1;
    default:
      return 4;
  }
}
inline const char* state_type_name(StateType t) noexcept {
  static const char* const names[] = {"?",   "f32", "f64",  "i32",  "i64",
                                      "u32", "u64", "bool", "char", "u8"};
  return names[static_cast<std::size_t>(t) <= 9 ? static_cast<std::size_t>(t) : 0];
}
inline const char* state_role_name(StateRole r) noexcept {
  return r == StateRole::kKind ? "kind" : r == StateRole::kConfig ? "configuration" : "state";
}

/// One record of a parsed checkpoint; `data` points into the file's bytes.
struct StateEntry {
  std::string name;
  StateRole role;
  StateType type;
  std::uint64_t count;
  const std::uint8_t* data;
};

/// Element i of a record's data as T (bool: one byte, 0 or 1, checked when parsed).
template <class T>
T state_element(const std::uint8_t* data, std::size_t i) noexcept {
  if constexpr (std::is_same<T, bool>::value) {
    return data[i] != 0;
  } else {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    return v;
  }
}

/// Refuses element values outside `c` (what names the entry; code: kNonFiniteInput for NaN or
/// infinity, else kInvalidArgument — a load reports both as kInvalidArgument).
template <class T, class Get>
void check_state_values(std::size_t n, Get&& get, const StateCheck& c, const std::string& what,
                        bool loading) {
  if constexpr (!std::is_same<T, bool>::value && !std::is_same<T, char>::value) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto v = static_cast<double>(get(i));
      if (state_value_ok(c, v)) continue;
      const ErrorCode code =
          loading || std::isfinite(v) ? ErrorCode::kInvalidArgument : ErrorCode::kNonFiniteInput;
      fail(code, msg(what, ": element ", i, " is ", v, ", not ", describe_state_check(c)));
    }
  }
}

/// The dotted path of the entries (names under each child's name).
template <class Derived>
class StatePath {
 public:
  /// Visits obj's state under "name.".
  template <class T>
  void child(const char* name, T& obj) {
    static_assert(has_visit_state<T, Derived>::value,
                  "checkpoint: every object saved needs a visit_state(v) member (the state "
                  "protocol, base/state.hpp); an empty quantizer slot is fq::NoFakeQuant.");
    const std::size_t n = prefix_.size();
    prefix_ += name;
    prefix_ += '.';
    obj.visit_state(static_cast<Derived&>(*this));
    prefix_.resize(n);
  }

 protected:
  std::string full(const char* name) const { return prefix_ + name; }
  std::string prefix_;
};

/// Objects -> records (checkpoint_bytes).
class StateSaver : public StatePath<StateSaver> {
 public:
  static constexpr StatePass kPass = StatePass::kSave;
  void kind(const char* k) { record("kind", StateRole::kKind, k, std::strlen(k)); }
  template <class T>
  void config(const char* name, const T& x) {
    record(name, StateRole::kConfig, &x, 1);
  }
  template <class T>
  void config_array(const char* name, const T* p, std::size_t n) {
    record(name, StateRole::kConfig, p, n);
  }
  template <class T>
  void state(const char* name, T& x, const StateCheck& c = StateCheck{}) {
    state_span(name, &x, 1, c);
  }
  template <class T>
  void state_span(const char* name, T* p, std::size_t n, const StateCheck& c) {
    check_state_values<T>(
        n, [p](std::size_t i) { return p[i]; }, c, msg("save_checkpoint: '", full(name), "'"),
        false);
    record(name, StateRole::kState, p, n);
  }
  template <class T>
  void state_vector(const char* name, std::vector<T>& v, const StateCheck& c, const StateSize&) {
    state_span(name, v.data(), v.size(), c);
  }
  void state_text(const char* name, std::string& s, bool (*)(const std::string&)) {
    record(name, StateRole::kState, s.data(), s.size());
  }

  /// The file's bytes: header, records, CRC.
  std::vector<std::uint8_t> finish() {
    ByteWriter w;
    for (char c : kCheckpointMagic) w.put(c);
    w.put(kCheckpointFileVersion);
    w.put(count_);
    std::vector<std::uint8_t>& out = w.bytes();
    out.insert(out.end(), body_.bytes().begin(), body_.bytes().end());
    w.put(crc32(out.data(), out.size()));
    return std::move(out);
  }

 private:
  template <class T>
  void record(const char* name, StateRole role, const T* p, std::size_t n) {
    const std::string f = full(name);
    FQ_CHECK(
        !f.empty() && f.size() <= kMaxStateName && n <= kMaxStateElements && count_ < 0xFFFFFFFFu,
        ErrorCode::kInvalidArgument,
        msg("save_checkpoint: entry '", f, "' (", n,
            " elements) exceeds the format's limits (names up to ", kMaxStateName, " bytes, ",
            kMaxStateElements, " elements)"));
    body_.put(static_cast<std::uint32_t>(f.size()));
    for (char ch : f) body_.put(ch);
    body_.put(static_cast<std::uint8_t>(role));
    body_.put(static_cast<std::uint8_t>(state_type_of<T>()));
    body_.put(static_cast<std::uint64_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (std::is_same<T, bool>::value)
        body_.put(static_cast<std::uint8_t>(p[i] ? 1 : 0));
      else
        body_.put(p[i]);
    }
    ++count_;
  }

  ByteWriter body_;
  std::uint32_t count_ = 0;
};

/// Records vs objects (a load's first walk): every entry matched and checked, nothing written.
class StateChecker : public StatePath<StateChecker> {
 public:
  static constexpr StatePass kPass = StatePass::kCheck;
  StateChecker(const std::vector<StateEntry>& entries, std::string where)
      : entries_(entries), where_(std::move(where)) {}

  void kind(const char* k) {
    const StateEntry& e = next("kind", StateRole::kKind, StateType::kChar);
    const std::string file(reinterpret_cast<const char*>(e.data),
                           static_cast<std::size_t>(e.count));
    FQ_CHECK(file == k, ErrorCode::kInvalidArgument,
             msg(where_, ": '", e.name, "': the checkpoint holds a ", file, ", this object is a ",
                 k, " (a different architecture or scheme)"));
  }
  template <class T>
  void config(const char* name, const T& x) {
    config_array(name, &x, 1);
  }
  template <class T>
  void config_array(const char* name, const T* p, std::size_t n) {
    const StateEntry& e = next(name, StateRole::kConfig, state_type_of<T>());
    FQ_CHECK(e.count == n, ErrorCode::kInvalidArgument,
             msg(where_, ": '", e.name, "' has ", e.count, " elements in the checkpoint, ", n,
                 " here (a different architecture or scheme)"));
    for (std::size_t i = 0; i < n; ++i) {
      const T f = state_element<T>(e.data, i);
      FQ_CHECK(std::memcmp(&f, p + i, sizeof(T)) == 0, ErrorCode::kInvalidArgument,
               msg(where_, ": '", e.name, "' is ", +f, " in the checkpoint, ", +p[i],
                   " here (a different architecture, scheme or configuration)",
                   n > 1 ? msg(" at element ", i) : std::string()));
    }
  }
  template <class T>
  void state(const char* name, T& x, const StateCheck& c = StateCheck{}) {
    state_span(name, &x, 1, c);
  }
  template <class T>
  void state_span(const char* name, T*, std::size_t n, const StateCheck& c) {
    const StateEntry& e = next(name, StateRole::kState, state_type_of<T>());
    FQ_CHECK(e.count == n, ErrorCode::kInvalidArgument,
             msg(where_, ": '", e.name, "' has ", e.count, " elements in the checkpoint, ", n,
                 " here (a different architecture or scheme)"));
    values<T>(e, c);
  }
  template <class T>
  void state_vector(const char* name, std::vector<T>&, const StateCheck& c, const StateSize& s) {
    const StateEntry& e = next(name, StateRole::kState, state_type_of<T>());
    FQ_CHECK(e.count >= s.min && e.count <= s.max, ErrorCode::kInvalidArgument,
             msg(where_, ": '", e.name, "' has ", e.count, " elements, outside [", s.min, ", ",
                 s.max, "]"));
    if (s.same_as != nullptr) {
      const auto it = sizes_.find(full(s.same_as));
      FQ_CHECK(it != sizes_.end() && it->second == e.count, ErrorCode::kInvalidArgument,
               msg(where_, ": '", e.name, "' has ", e.count, " elements, '", full(s.same_as),
                   "' another count"));
    }
    sizes_[e.name] = e.count;
    values<T>(e, c);
  }
  void state_text(const char* name, std::string&, bool (*valid)(const std::string&)) {
    const StateEntry& e = next(name, StateRole::kState, StateType::kChar);
    FQ_CHECK(valid(std::string(reinterpret_cast<const char*>(e.data),
                               static_cast<std::size_t>(e.count))),
             ErrorCode::kInvalidArgument, msg(where_, ": '", e.name, "' is not a valid state"));
  }
  /// Every record was matched.
  void finish() const {
    FQ_CHECK(index_ == entries_.size(), ErrorCode::kInvalidArgument,
             msg(where_, ": the checkpoint has ", entries_.size(), " entries, these objects ",
                 index_, "; the first left over is '",
                 index_ < entries_.size() ? entries_[index_].name : std::string(),
                 "' (a different architecture or scheme)"));
  }

 private:
  const StateEntry& next(const char* name, StateRole role, StateType type) {
    const std::string f = full(name);
    FQ_CHECK(
        index_ < entries_.size(), ErrorCode::kInvalidArgument,
        msg(where_, ": the checkpoint ends after ", entries_.size(),
            " entries; these objects go on with '", f, "' (a different architecture or scheme)"));
    const StateEntry& e = entries_[index_++];
    FQ_CHECK(e.name == f, ErrorCode::kInvalidArgument,
             msg(where_, ": entry ", index_ - 1, " is '", e.name, "' in the checkpoint, '", f,
                 "' here (a different architecture or scheme)"));
    FQ_CHECK(
        e.role == role && e.type == type, ErrorCode::kInvalidArgument,
        msg(where_, ": '", f, "' is ", state_role_name(e.role), " of ", state_type_name(e.type),
            " in the checkpoint, ", state_role_name(role), " of ", state_type_name(type), " here"));
    return e;
  }
  template <class T>
  void values(const StateEntry& e, const StateCheck& c) const {
    check_state_values<T>(
        static_cast<std::size_t>(e.count),
        [&e](std::size_t i) { return state_element<T>(e.data, i); }, c,
        msg(where_, ": '", e.name, "'"), true);
  }

  const std::vector<StateEntry>& entries_;
  std::string where_;
  std::size_t index_ = 0;
  std::map<std::string, std::uint64_t> sizes_;
};

/// Records -> objects (a load's second walk, after StateChecker passed on the same objects).
class StateLoader : public StatePath<StateLoader> {
 public:
  static constexpr StatePass kPass = StatePass::kLoad;
  explicit StateLoader(const std::vector<StateEntry>& entries) : entries_(entries) {}

  void kind(const char*) { (void)next("kind"); }
  template <class T>
  void config(const char* name, const T&) {
    (void)next(name);
  }
  template <class T>
  void config_array(const char* name, const T*, std::size_t) {
    (void)next(name);
  }
  template <class T>
  void state(const char* name, T& x, const StateCheck& = StateCheck{}) {
    x = state_element<T>(next(name).data, 0);
  }
  template <class T>
  void state_span(const char* name, T* p, std::size_t n, const StateCheck&) {
    const StateEntry& e = next(name);
    for (std::size_t i = 0; i < n; ++i) p[i] = state_element<T>(e.data, i);
  }
  template <class T>
  void state_vector(const char* name, std::vector<T>& v, const StateCheck&, const StateSize&) {
    const StateEntry& e = next(name);
    v.resize(static_cast<std::size_t>(e.count));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = state_element<T>(e.data, i);
  }
  void state_text(const char* name, std::string& s, bool (*)(const std::string&)) {
    const StateEntry& e = next(name);
    s.assign(reinterpret_cast<const char*>(e.data), static_cast<std::size_t>(e.count));
  }

 private:
  // The checker walked these objects over these records: a difference now means a
  // visit_state whose order depends on its values, which the protocol forbids.
  const StateEntry& next(const char* name) {
    const std::string f = full(name);
    FQ_CHECK(index_ < entries_.size() && entries_[index_].name == f, ErrorCode::kInvalidState,
             msg("load_checkpoint: '", f,
                 "' was reported in another order than when checked (a visit_state that depends "
                 "on its state's values; base/state.hpp)"));
    return entries_[index_++];
  }

  const std::vector<StateEntry>& entries_;
  std::size_t index_ = 0;
};

}  // namespace detail
}  // namespace fq

#endif  // FQ_CONVERT_STATE_VISITORS_HPP_
