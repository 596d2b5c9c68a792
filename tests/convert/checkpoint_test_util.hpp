// SPDX-License-Identifier: MIT
// What the checkpoint tests share: bit patterns of float vectors, and the editing of a saved
// checkpoint (an entry's data offset; a new CRC after a change, so that the damage reaches the
// checks behind the checksum).
#ifndef FQ_TESTS_CONVERT_CHECKPOINT_TEST_UTIL_HPP_
#define FQ_TESTS_CONVERT_CHECKPOINT_TEST_UTIL_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/checkpoint.hpp>

#include "test_util.hpp"

namespace fq_checkpoint_util {

/// The bit patterns of a float container's elements (exact comparisons, NaN included).
template <class Vec>
std::vector<std::uint64_t> float_bits(const Vec& v) {
  std::vector<std::uint64_t> bits;
  for (float f : v) bits.push_back(fq_test::bits_of(f));
  return bits;
}

/// Recomputes the checkpoint's CRC-32 after an edit.
inline void reseal(std::vector<std::uint8_t>& b) {
  const std::uint32_t crc = fq::detail::crc32(b.data(), b.size() - 4);
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

/// The byte offset of entry `name`'s data in a checkpoint.
inline std::size_t data_offset(const std::vector<std::uint8_t>& b, const std::string& name) {
  for (const auto& e : fq::detail::parse_checkpoint(b, "test"))
    if (e.name == name) return static_cast<std::size_t>(e.data - b.data());
  FAIL("no entry " << name);
  return 0;
}

}  // namespace fq_checkpoint_util

#endif  // FQ_TESTS_CONVERT_CHECKPOINT_TEST_UTIL_HPP_
