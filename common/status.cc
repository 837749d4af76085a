#include "common/status.h"

#include <cstring>

namespace sluice {
namespace {

struct CodeInfo {
  Code code;
  int err;
  const char* name;
};

constexpr CodeInfo kCodes[] = {
    {Code::kOk, 0, "OK"},
    {Code::kNotFound, ENOENT, "NOT_FOUND"},
    {Code::kExists, EEXIST, "EXISTS"},
    {Code::kNotDir, ENOTDIR, "NOT_DIR"},
    {Code::kIsDir, EISDIR, "IS_DIR"},
    {Code::kNotEmpty, ENOTEMPTY, "NOT_EMPTY"},
    {Code::kInvalid, EINVAL, "INVALID"},
    {Code::kNameTooLong, ENAMETOOLONG, "NAME_TOO_LONG"},
    {Code::kPermission, EACCES, "PERMISSION"},
    {Code::kNotPermitted, EPERM, "NOT_PERMITTED"},
    {Code::kIo, EIO, "IO"},
    {Code::kNoSpace, ENOSPC, "NO_SPACE"},
    {Code::kTimeout, ETIMEDOUT, "TIMEOUT"},
    {Code::kUnavailable, EHOSTUNREACH, "UNAVAILABLE"},
    {Code::kCancelled, ECANCELED, "CANCELLED"},
    {Code::kStaleMap, ESTALE, "STALE_MAP"},
    {Code::kProtocol, EPROTO, "PROTOCOL"},
    {Code::kUnsupported, EOPNOTSUPP, "UNSUPPORTED"},
    {Code::kBusy, EBUSY, "BUSY"},
    {Code::kCrossDevice, EXDEV, "CROSS_DEVICE"},
    {Code::kTooBig, EFBIG, "TOO_BIG"},
    {Code::kNoData, ENODATA, "NO_DATA"},
    {Code::kRange, ERANGE, "RANGE"},
    {Code::kLoop, ELOOP, "LOOP"},
    {Code::kInternal, EIO, "INTERNAL"},
    {Code::kCorrupt, EIO, "CORRUPT"},  // a checksum mismatch is EIO to users
};
static_assert(sizeof(kCodes) / sizeof(kCodes[0]) == static_cast<size_t>(Code::kMaxCode));

}  // namespace

int CodeToErrno(Code code) {
  auto i = static_cast<size_t>(code);
  if (i >= static_cast<size_t>(Code::kMaxCode)) return EIO;
  return kCodes[i].err;
}

Code ErrnoToCode(int err) {
  if (err == 0) return Code::kOk;
  for (const auto& c : kCodes) {
    if (c.err == err && c.code != Code::kInternal && c.code != Code::kCorrupt) return c.code;
  }
  switch (err) {
    case ENOTSUP: return Code::kUnsupported;
    case ENOSYS: return Code::kUnsupported;
    case EMSGSIZE: return Code::kTooBig;
    case ECONNREFUSED:
    case ECONNRESET:
    case ENOTCONN:
    case EPIPE: return Code::kUnavailable;
    case EAGAIN: return Code::kBusy;
    default: return Code::kIo;
  }
}

const char* CodeName(Code code) {
  auto i = static_cast<size_t>(code);
  if (i >= static_cast<size_t>(Code::kMaxCode)) return "UNKNOWN";
  return kCodes[i].name;
}

Status Status::FromErrno(int err, const std::string& context) {
  return Status(ErrnoToCode(err), context + ": " + std::strerror(err));
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::Prefix(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace sluice
