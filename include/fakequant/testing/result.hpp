// SPDX-License-Identifier: MIT
// fakequant/testing/result.hpp: CheckResult, what every testing-kit check returns.
//
// A result lists the failures (each names the property, the element's row-major index, its
// channel, the input, the expected and the actual value, and a sentence), counts how many
// elements each property examined, and keeps notes (what was skipped and why). It never
// throws or aborts: a test decides what a failure means (see testing/catch2.hpp).
#ifndef FQ_TESTING_RESULT_HPP_
#define FQ_TESTING_RESULT_HPP_

#include <cstddef>  // size_t
#include <cstdint>  // int64_t
#include <limits>   // numeric_limits
#include <map>      // map
#include <sstream>  // ostringstream
#include <string>   // string
#include <utility>  // move
#include <vector>   // vector

namespace fq {
namespace testing {

/// One violated property at one element (index -1 for a whole-tensor or setup failure).
struct Failure {
  std::string property;  ///< e.g. "on_grid", "gradient_dx", "param_gradient"
  std::int64_t index;    ///< row-major linear index of the element, or component of a parameter
  std::int64_t channel;  ///< channel of the element (0 for per-tensor quantizers)
  double input;          ///< x at that element (NaN when not applicable)
  double expected;
  double actual;
  std::string message;  ///< the full sentence, naming all of the above
};

/// The outcome of a testing-kit check.
class CheckResult {
 public:
  /// Failures stored per property (all are counted; the first ones are kept).
  explicit CheckResult(std::size_t max_failures_per_property = 8)
      : max_per_property_(max_failures_per_property) {}

  bool passed() const noexcept { return total_failures_ == 0; }
  /// Stored failures, in the order found.
  const std::vector<Failure>& failures() const noexcept { return failures_; }
  /// Number of failures found, including those not stored.
  std::int64_t failure_count() const noexcept { return total_failures_; }
  std::int64_t failure_count(const std::string& property) const {
    const auto it = failure_counts_.find(property);
    return it == failure_counts_.end() ? 0 : it->second;
  }
  bool has_failure(const std::string& property) const { return failure_count(property) > 0; }
  /// The first stored failure of a property, or nullptr.
  const Failure* first_failure(const std::string& property) const {
    for (const Failure& f : failures_)
      if (f.property == property) return &f;
    return nullptr;
  }
  /// How many elements (or points) a property examined.
  std::int64_t checked(const std::string& property) const { return stat(property + ".checked"); }
  /// A named counter, e.g. "gradient_dx.skipped_rounding"; 0 if never set.
  std::int64_t stat(const std::string& name) const {
    const auto it = stats_.find(name);
    return it == stats_.end() ? 0 : it->second;
  }
  const std::map<std::string, std::int64_t>& stats() const noexcept { return stats_; }
  const std::vector<std::string>& notes() const noexcept { return notes_; }

  /// A readable report: verdict, per-property counts, notes and the stored failures.
  std::string report(std::size_t max_failures = 20) const {
    std::ostringstream os;
    os << (passed() ? "PASSED" : "FAILED") << ": " << total_failures_ << " failure(s)\n";
    for (const auto& kv : stats_) {
      os << "  " << kv.first << " = " << kv.second;
      const std::string suffix = ".checked";
      if (kv.first.size() > suffix.size() &&
          kv.first.compare(kv.first.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const std::string prop = kv.first.substr(0, kv.first.size() - suffix.size());
        os << " (" << failure_count(prop) << " failed)";
      }
      os << '\n';
    }
    for (const std::string& n : notes_) os << "  note: " << n << '\n';
    std::size_t shown = 0;
    for (const Failure& f : failures_) {
      if (shown++ == max_failures) {
        os << "  ... " << (failures_.size() - max_failures) << " more stored failure(s)\n";
        break;
      }
      os << "  " << f.message << '\n';
    }
    return os.str();
  }

  /// Records a failure; `message` is the sentence after "property: ".
  void add_failure(const std::string& property, std::int64_t index, std::int64_t channel,
                   double input, double expected, double actual, const std::string& message) {
    ++total_failures_;
    std::int64_t& n = failure_counts_[property];
    if (static_cast<std::size_t>(n++) >= max_per_property_) return;
    failures_.push_back(
        Failure{property, index, channel, input, expected, actual, property + ": " + message});
  }
  void add_note(std::string note) { notes_.push_back(std::move(note)); }
  void add_stat(const std::string& name, std::int64_t delta) { stats_[name] += delta; }
  /// Appends another result's failures, notes and counters.
  void merge(const CheckResult& other) {
    for (const Failure& f : other.failures_) failures_.push_back(f);
    for (const auto& kv : other.failure_counts_) failure_counts_[kv.first] += kv.second;
    total_failures_ += other.total_failures_;
    for (const std::string& n : other.notes_) notes_.push_back(n);
    for (const auto& kv : other.stats_) stats_[kv.first] += kv.second;
  }

 private:
  std::size_t max_per_property_;
  std::vector<Failure> failures_;
  std::map<std::string, std::int64_t> failure_counts_;
  std::int64_t total_failures_ = 0;
  std::map<std::string, std::int64_t> stats_;
  std::vector<std::string> notes_;
};

namespace detail {
/// Formats a sentence; floating-point values print round-trip exact.
template <class... Args>
std::string say(const Args&... args) {
  std::ostringstream os;
  os.precision(std::numeric_limits<float>::max_digits10);
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_RESULT_HPP_
