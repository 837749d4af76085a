// Status and Result<T>: errors as values across every Sluice module boundary.
//
// A Status is a code plus a human message that names what failed and where.
// Codes map one-to-one onto errno values so the FUSE edge and the C API can
// return them unchanged; the wire carries the code as a uint32.
#pragma once

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sluice {

enum class Code : uint32_t {
  kOk = 0,
  kNotFound = 1,          // ENOENT
  kExists = 2,            // EEXIST
  kNotDir = 3,            // ENOTDIR
  kIsDir = 4,             // EISDIR
  kNotEmpty = 5,          // ENOTEMPTY
  kInvalid = 6,           // EINVAL
  kNameTooLong = 7,       // ENAMETOOLONG
  kPermission = 8,        // EACCES
  kNotPermitted = 9,      // EPERM
  kIo = 10,               // EIO (includes checksum mismatches)
  kNoSpace = 11,          // ENOSPC
  kTimeout = 12,          // ETIMEDOUT (deadline expired)
  kUnavailable = 13,      // EHOSTUNREACH-like: peer gone, retry elsewhere
  kCancelled = 14,        // ECANCELED
  kStaleMap = 15,         // ESTALE: caller's cluster-map version is old
  kProtocol = 16,         // EPROTO: malformed frame or message
  kUnsupported = 17,      // EOPNOTSUPP / unknown method
  kBusy = 18,             // EBUSY
  kCrossDevice = 19,      // EXDEV
  kTooBig = 20,           // EFBIG / EMSGSIZE
  kNoData = 21,           // ENODATA (xattr missing)
  kRange = 22,            // ERANGE (xattr buffer too small)
  kLoop = 23,             // ELOOP
  kInternal = 24,         // anything else; always with a message
  kCorrupt = 25,          // EIO: stored data does not match its checksum
  kMaxCode = 26,
};

// errno value for a code (never 0 for a non-OK code).
int CodeToErrno(Code code);
// Code for an errno value; unknown values map to kIo / kInternal.
Code ErrnoToCode(int err);
// Short stable name, e.g. "NOT_FOUND".
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  // An error from an errno value, e.g. after a failed syscall: "open /x: No such file".
  static Status FromErrno(int err, const std::string& context);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  int to_errno() const { return ok() ? 0 : CodeToErrno(code_); }
  // "NOT_FOUND: lookup 'a' in inode 12" — for logs and the CLI.
  std::string ToString() const;
  // Returns a copy whose message is "context: message".
  Status Prefix(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error. Access value() only after checking ok().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice

#define SLUICE_RETURN_IF_ERROR(expr)       \
  do {                                     \
    ::sluice::Status _st = (expr);         \
    if (!_st.ok()) return _st;             \
  } while (0)

#define SLUICE_CONCAT_INNER(a, b) a##b
#define SLUICE_CONCAT(a, b) SLUICE_CONCAT_INNER(a, b)
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr)                         \
  auto SLUICE_CONCAT(_res_, __LINE__) = (expr);                    \
  if (!SLUICE_CONCAT(_res_, __LINE__).ok())                        \
    return SLUICE_CONCAT(_res_, __LINE__).status();                \
  lhs = std::move(SLUICE_CONCAT(_res_, __LINE__)).value()
