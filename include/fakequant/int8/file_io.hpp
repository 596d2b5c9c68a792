// SPDX-License-Identifier: MIT
// fakequant/int8/file_io.hpp: the byte level of the model files (int8/model_file.hpp) — the
// CRC-32 that seals a file, a little-endian writer, a reader that never reads past the end,
// and whole-file reads and writes with their limits.
//
// crc32 is CRC-32 (IEEE 802.3, as zlib's). read_file_bytes reads a regular file of at most
// kMaxModelFileBytes (4 GiB; above: ErrorCode::kOutOfMemory, refused before reading); a path
// that cannot be opened or read, a directory or anything else that is not a regular file (a
// character device such as /dev/zero, a pipe) is ErrorCode::kIoError, as is a file that
// changes while it is read or cannot be written. ByteReader reports a truncated input or an
// array of an unexpected length as ErrorCode::kInvalidArgument, naming what it was reading.
#ifndef FQ_INT8_FILE_IO_HPP_
#define FQ_INT8_FILE_IO_HPP_

#include <cstddef>       // size_t
#include <cstdint>       // fixed-width integers
#include <cstdio>        // FILE, fopen, fread, fwrite, fclose
#include <cstring>       // memcpy
#include <filesystem>    // status, file_size
#include <memory>        // unique_ptr
#include <string>        // string
#include <system_error>  // error_code
#include <type_traits>   // is_trivially_copyable
#include <utility>       // move
#include <vector>        // vector

#include <fakequant/base/error.hpp>

namespace fq {

/// The largest model file the loaders read (4 GiB; file comment).
inline constexpr std::uint64_t kMaxModelFileBytes = std::uint64_t{1} << 32;

namespace detail {
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
    FQ_CHECK(n <= (n_ - pos_) / sizeof(T), ErrorCode::kInvalidArgument,
             msg(where_, ": truncated file (", what, ": ", n, " elements at byte ", pos_, ")"));
    std::vector<T> v;
    v.reserve(static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) v.push_back(get<T>(what));
    return v;
  }
  const std::string& where() const noexcept { return where_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_, pos_ = 0;
  std::string where_;
};

/// Closes a std::FILE (for std::unique_ptr).
struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

/// The bytes of the regular file `path`, or kIoError / kOutOfMemory (file comment). std::FILE
/// and std::filesystem's error codes: no iostream exception escapes, and a device or pipe is
/// refused before anything is read, so an endless stream cannot hang the loader.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path,
                                                 const std::string& where) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  FQ_CHECK(!ec && fs::exists(st), ErrorCode::kIoError,
           msg(where, ": cannot open (", ec ? ec.message() : std::string("no such file"), ")"));
  FQ_CHECK(!fs::is_directory(st), ErrorCode::kIoError, msg(where, ": cannot open a directory"));
  FQ_CHECK(fs::is_regular_file(st), ErrorCode::kIoError,
           msg(where, ": not a regular file (a device, pipe or socket cannot hold a model)"));
  const std::uintmax_t size = fs::file_size(path, ec);
  FQ_CHECK(!ec, ErrorCode::kIoError, msg(where, ": cannot read its size (", ec.message(), ")"));
  FQ_CHECK(size <= kMaxModelFileBytes, ErrorCode::kOutOfMemory,
           msg(where, ": ", size, " bytes exceed the largest model file (", kMaxModelFileBytes,
               " bytes)"));
  const std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  FQ_CHECK(f != nullptr, ErrorCode::kIoError, msg(where, ": cannot open"));
  // Exactly `size` bytes: a file that changed while being read is an error, not a longer read.
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const std::size_t r = std::fread(bytes.data() + got, 1, bytes.size() - got, f.get());
    if (r == 0) break;
    got += r;
  }
  FQ_CHECK(!std::ferror(f.get()), ErrorCode::kIoError, msg(where, ": read error"));
  FQ_CHECK(got == bytes.size() && std::fgetc(f.get()) == EOF, ErrorCode::kIoError,
           msg(where, ": the file changed while it was read"));
  return bytes;
}

/// Writes `bytes` to `path` (created or truncated); `fn` names the caller in errors.
inline void write_file_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes,
                             const char* fn) {
  const std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  FQ_CHECK(f != nullptr, ErrorCode::kIoError, msg(fn, ": cannot open ", path, " for writing"));
  const std::size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f.get());
  FQ_CHECK(written == bytes.size() && std::fflush(f.get()) == 0, ErrorCode::kIoError,
           msg(fn, ": writing ", path, " failed"));
}
}  // namespace detail

}  // namespace fq

#endif  // FQ_INT8_FILE_IO_HPP_
