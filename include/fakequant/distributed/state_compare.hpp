// SPDX-License-Identifier: MIT
// fakequant/distributed/state_compare.hpp: the collective checks that every rank holds the same
// network — check_same_network (structure: kinds, configuration, shapes; at start) and
// check_in_sync (structure and every state value, bit for bit; e.g. after training) — and the
// agreement step every collective error path of fakequant/distributed/ goes through.
//
// Both walk the objects' visit_state (the checkpoint protocol, base/state.hpp) with a
// describer that writes one line per entry:
//   structure: "path kind k" | "path config = v1 v2 ..." | "path state <type> x n"
//              (state_vector entries give no length: it may change with the data, e.g. a
//              per-channel observer's range before its first batch)
//   values:    the structure lines, each state line followed by "#<FNV-1a hash of its bytes>"
// Rank 0's lines are broadcast; each rank compares them with its own; the lowest rank that
// differs broadcasts its message (the first differing entry, both sides), and every rank fails
// with it (ErrorCode::kShapeMismatch for structure, kInvalidState for values): no rank is left
// waiting in a later collective. The cost is one broadcast of the description (a few KB for a
// small network) and two small all-reduces.
#ifndef FQ_DISTRIBUTED_STATE_COMPARE_HPP_
#define FQ_DISTRIBUTED_STATE_COMPARE_HPP_

#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint64_t, uint8_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <string>       // string, to_string
#include <type_traits>  // is_same
#include <vector>       // vector

#include <fakequant/base/communicator.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/base/state.hpp>
#include <fakequant/convert/state_visitors.hpp>

namespace fq {
namespace detail {

/// Broadcasts a byte container (std::string or std::vector<std::uint8_t>) from `root`: its
/// length, then its bytes; the other ranks' `buf` is resized to match.
template <class Bytes>
void broadcast_bytes(Communicator& comm, Bytes& buf, int root) {
  std::int64_t len = static_cast<std::int64_t>(buf.size());
  comm.broadcast(&len, sizeof len, root);
  if (comm.rank() != root) buf.resize(static_cast<std::size_t>(len));
  if (len > 0) comm.broadcast(buf.data(), buf.size(), root);
}

/// Makes every rank agree on an error: `ok` is this rank's outcome and `message` its error.
/// If any rank failed, every rank fails with the message of the lowest failing rank and `code`.
inline void agree_or_fail(Communicator& comm, bool ok, const std::string& message, ErrorCode code) {
  constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::max();
  std::int64_t first = ok ? kNone : comm.rank();
  comm.all_reduce(&first, 1, ReduceOp::kMin);
  if (first == kNone) return;
  std::string text = message;
  broadcast_bytes(comm, text, static_cast<int>(first));
  fail(code, text);
}

/// Runs f() on this rank; a thrown fq::Error becomes (error, code) for agree_or_fail, so that a
/// rank's failure is every rank's (without exceptions an error ends the process, base/error.hpp).
template <class F>
void run_capturing_error(const char* where, Communicator& comm, std::string& error, ErrorCode& code,
                         F&& f) {
#if FQ_HAS_EXCEPTIONS
  try {
    f();
  } catch (const Error& e) {
    error = msg(where, ": rank ", comm.rank(), ": ", e.what());
    code = e.code();
  }
#else
  (void)where;
  (void)comm;
  (void)error;
  (void)code;
  f();
#endif
}

/// One line per visit_state entry (file comment); `values` adds each state entry's hash.
class StateDescriber : public StatePath<StateDescriber> {
 public:
  static constexpr StatePass kPass = StatePass::kSave;  // reads the objects, writes nothing
  explicit StateDescriber(bool values) : values_(values) {}

  void kind(const char* k) { lines_.push_back(full("") + " kind " + k); }
  template <class T>
  void config(const char* name, const T& x) {
    config_array(name, &x, 1);
  }
  template <class T>
  void config_array(const char* name, const T* p, std::size_t n) {
    std::string s = full(name) + " config =";
    for (std::size_t i = 0; i < n; ++i) s += msg(" ", +p[i]);
    lines_.push_back(s);
  }
  template <class T>
  void state(const char* name, T& x, const StateCheck& = StateCheck{}) {
    entry(name, &x, 1, true);
  }
  template <class T>
  void state_span(const char* name, T* p, std::size_t n, const StateCheck&) {
    entry(name, p, n, true);
  }
  template <class T>
  void state_vector(const char* name, std::vector<T>& v, const StateCheck&, const StateSize&) {
    entry(name, v.data(), v.size(), false);
  }
  void state_text(const char* name, std::string& s, bool (*)(const std::string&)) {
    std::string line = full(name) + " state text";
    if (values_) line += " #" + std::to_string(fnv1a(s.data(), s.size()));
    lines_.push_back(line);
  }
  const std::vector<std::string>& lines() const noexcept { return lines_; }

 private:
  static std::uint64_t fnv1a(const void* p, std::size_t bytes) noexcept {
    std::uint64_t h = 14695981039346656037ull;
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
    return h;
  }
  template <class T>
  void entry(const char* name, const T* p, std::size_t n, bool fixed_size) {
    std::string line = msg(full(name), " state ", state_type_name(state_type_of<T>()));
    if (fixed_size) line += msg(" x ", n);
    if (values_) {
      std::uint64_t h = 14695981039346656037ull;
      if constexpr (std::is_same<T, bool>::value) {
        for (std::size_t i = 0; i < n; ++i) {
          const unsigned char c = p[i] ? 1 : 0;
          h = (h ^ c) * 1099511628211ull;
        }
      } else {
        h = fnv1a(p, n * sizeof(T));
      }
      line += msg(" len ", n, " #", h);
    }
    lines_.push_back(line);
  }

  bool values_;
  std::vector<std::string> lines_;
};

/// The description of xs... (file comment), named "0.", "1.", ... as a checkpoint names them.
template <class... Ts>
std::vector<std::string> describe_state(bool values, Ts&... xs) {
  StateDescriber d(values);
  std::size_t i = 0;
  (d.child(std::to_string(i++).c_str(), xs), ...);
  return d.lines();
}

/// Compares every rank's description with rank 0's (file comment).
inline void compare_with_rank0(Communicator& comm, const std::vector<std::string>& mine,
                               const char* where, const char* what, ErrorCode code) {
  std::string joined;
  for (const std::string& l : mine) joined += l + '\n';
  std::string theirs = joined;
  broadcast_bytes(comm, theirs, 0);
  std::string problem;
  if (theirs != joined) {
    std::vector<std::string> lines0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < theirs.size(); ++i)
      if (theirs[i] == '\n') {
        lines0.push_back(theirs.substr(start, i - start));
        start = i + 1;
      }
    std::size_t k = 0;
    while (k < lines0.size() && k < mine.size() && lines0[k] == mine[k]) ++k;
    const std::string a = k < lines0.size() ? lines0[k] : std::string("(nothing: it ends here)");
    const std::string b = k < mine.size() ? mine[k] : std::string("(nothing: it ends here)");
    problem = msg(where, ": rank ", comm.rank(), " ", what, " rank 0's; first difference, entry ",
                  k, ": rank 0 has '", a, "', rank ", comm.rank(), " has '", b, "'");
  }
  agree_or_fail(comm, problem.empty(), problem, code);
}

}  // namespace detail

/// Collective: fails on every rank (ErrorCode::kShapeMismatch, naming the first differing
/// entry) unless every rank built xs... with the same structure — kinds, configuration
/// (shapes, ranges, eps, schedule steps) and state sizes (file comment). Call it at start.
template <class... Ts>
void check_same_network(Communicator& comm, Ts&... xs) {
  detail::compare_with_rank0(comm, detail::describe_state(false, xs...), "check_same_network",
                             "built a different network from", ErrorCode::kShapeMismatch);
}

/// Collective: fails on every rank (ErrorCode::kInvalidState, naming the first differing entry)
/// unless xs... hold the same structure and the same state bits on every rank: parameters,
/// observer ranges, qparams, batch-norm statistics, switches (file comment).
template <class... Ts>
void check_in_sync(Communicator& comm, Ts&... xs) {
  detail::compare_with_rank0(comm, detail::describe_state(true, xs...), "check_in_sync",
                             "holds a state that differs from", ErrorCode::kInvalidState);
}

}  // namespace fq

#endif  // FQ_DISTRIBUTED_STATE_COMPARE_HPP_
