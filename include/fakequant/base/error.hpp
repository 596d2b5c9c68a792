// SPDX-License-Identifier: MIT
// fakequant/base/error.hpp: the one mechanism by which fakequant reports bad run-time input.
//
// Every run-time check (bad scale, bad range, shape mismatch, ...) calls fq::detail::fail(),
// which hands an fq::ErrorInfo to the installed error handler:
//   - with exceptions enabled, the default handler throws fq::Error (a std::invalid_argument
//     carrying the ErrorCode);
//   - with -fno-exceptions, the default handler prints the message to stderr and aborts.
// A user handler installed with fq::set_error_handler() may throw its own type, longjmp out,
// or end the process; if it returns, fakequant aborts (a check that failed never continues
// into UB). When the handler runs, the error path holds no object with a destructor: the
// message lives in a thread-local buffer (truncated to kMaxErrorMessage bytes), so a longjmp
// out of the handler skips nothing and leaks nothing on fakequant's side. The operation
// that failed has then been abandoned part-way (no output written, or partly written);
// what the caller's own frames held is theirs to handle, as with any longjmp.
// Compile-time misuse is reported by static_assert instead and never reaches this path.
#ifndef FQ_BASE_ERROR_HPP_
#define FQ_BASE_ERROR_HPP_

#include <atomic>     // atomic handler pointer
#include <cstddef>    // size_t
#include <cstdio>     // fprintf, snprintf
#include <cstdlib>    // abort
#include <cstring>    // memcpy
#include <limits>     // numeric_limits
#include <sstream>    // ostringstream
#include <stdexcept>  // invalid_argument
#include <string>     // string

#include <fakequant/base/config.hpp>

namespace fq {

/// What kind of bad input was detected.
enum class ErrorCode : int {
  kInvalidScale = 1,    ///< scale is <= 0, NaN or Inf
  kInvalidRange,        ///< quant_min > quant_max, or a range outside what the scheme allows
  kInvalidZeroPoint,    ///< zero point outside [quant_min, quant_max], or not allowed
  kShapeMismatch,       ///< two tensors that must agree in shape or layout do not
  kInvalidAxis,         ///< a channel axis outside [-rank, rank)
  kParamCountMismatch,  ///< per-channel parameter count differs from the channel count
  kInvalidLayout,       ///< bad strides (e.g. an output with overlapping elements), rank
  kNonFiniteInput,      ///< NaN or Inf data where finite data is required (observers)
  kInvalidArgument,     ///< any other invalid argument
  kOutOfMemory,         ///< a size too large to allocate (overflow, or above a stated limit)
  kIoError,             ///< a file that cannot be opened, read or written
  kInvalidState,        ///< a call out of order: backward twice, a cleared tape, no calibration
};

/// Short name of an error code, e.g. "invalid_scale".
inline const char* to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::kInvalidScale:
      return "invalid_scale";
    case ErrorCode::kInvalidRange:
      return "invalid_range";
    case ErrorCode::kInvalidZeroPoint:
      return "invalid_zero_point";
    case ErrorCode::kShapeMismatch:
      return "shape_mismatch";
    case ErrorCode::kInvalidAxis:
      return "invalid_axis";
    case ErrorCode::kParamCountMismatch:
      return "param_count_mismatch";
    case ErrorCode::kInvalidLayout:
      return "invalid_layout";
    case ErrorCode::kNonFiniteInput:
      return "non_finite_input";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kOutOfMemory:
      return "out_of_memory";
    case ErrorCode::kIoError:
      return "io_error";
    case ErrorCode::kInvalidState:
      return "invalid_state";
  }
  return "unknown";
}

/// What a handler receives: the code, a message naming the function and the bad value.
struct ErrorInfo {
  ErrorCode code;
  const char* message;
};

/// A user error handler. It should not return (throw, longjmp or exit); if it does,
/// fakequant calls std::abort(). `ErrorInfo::message` is valid until the handler ends.
using ErrorHandler = void (*)(const ErrorInfo&);

#if FQ_HAS_EXCEPTIONS
/// The exception thrown by the default handler when exceptions are enabled.
class Error : public std::invalid_argument {
 public:
  Error(ErrorCode code, const std::string& what) : std::invalid_argument(what), code_(code) {}
  /// The kind of error.
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};
#endif

namespace detail {
inline std::atomic<ErrorHandler>& error_handler_slot() noexcept {
  static std::atomic<ErrorHandler> slot{nullptr};
  return slot;
}
}  // namespace detail

/// Installs a handler for run-time errors (nullptr restores the default); returns the old one.
inline ErrorHandler set_error_handler(ErrorHandler handler) noexcept {
  return detail::error_handler_slot().exchange(handler);
}

namespace detail {

/// Concatenates the arguments into a message; floating-point values print round-trip exact.
template <class... Args>
std::string msg(const Args&... args) {
  std::ostringstream os;
  os.precision(std::numeric_limits<double>::max_digits10);
  (os << ... << args);
  return os.str();
}

/// The longest message a user handler receives (longer ones are cut, ending in "...").
inline constexpr std::size_t kMaxErrorMessage = 4095;

/// The thread's message buffer: a handler may longjmp, so while it runs the message must not
/// live in an object with a destructor.
inline char* error_message_buffer() noexcept {
  thread_local char buf[kMaxErrorMessage + 1];
  return buf;
}

/// Stores "fakequant: " + message in the thread's buffer, cut to kMaxErrorMessage bytes.
inline void stash_error_message(const std::string& message) noexcept {
  char* buf = error_message_buffer();
  const int n = std::snprintf(buf, kMaxErrorMessage + 1, "fakequant: %s", message.c_str());
  if (n > static_cast<int>(kMaxErrorMessage)) std::memcpy(buf + kMaxErrorMessage - 3, "...", 4);
}

/// Reports the stashed message through the installed handler; never returns. Its callers have
/// destroyed the message string before calling it, so nothing here needs unwinding.
[[noreturn]] inline void fail_stashed(ErrorCode code) {
  const char* text = error_message_buffer();
  if (ErrorHandler h = error_handler_slot().load()) {
    h(ErrorInfo{code, text});
    std::fprintf(stderr, "%s\n(fakequant: the error handler returned; aborting)\n", text);
    std::abort();
  }
#if FQ_HAS_EXCEPTIONS
  throw Error(code, text);
#else
  std::fprintf(stderr, "%s\n", text);
  std::abort();
#endif
}

/// Reports an error through the installed handler; never returns. The caller's `message`
/// is still alive while the handler runs: FQ_CHECK (which destroys it first) is the form
/// for code a longjmp handler may leave.
[[noreturn]] inline void fail(ErrorCode code, const std::string& message) {
  stash_error_message(message);
  fail_stashed(code);
}

}  // namespace detail
}  // namespace fq

/// Checks a run-time condition; on failure reports `code` with the message `msg` (a string).
/// The message is copied out and destroyed in its own statement before the handler runs.
#define FQ_CHECK(cond, code, msg)             \
  do {                                        \
    if (FQ_UNLIKELY(!(cond))) {               \
      ::fq::detail::stash_error_message(msg); \
      ::fq::detail::fail_stashed(code);       \
    }                                         \
  } while (0)

#endif  // FQ_BASE_ERROR_HPP_
