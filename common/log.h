// Minimal leveled logging to stderr: "2026-11-24T15:00:00.123 W meta[1] message".
// Thread-safe; one line per call. Level from SLUICE_LOG (debug|info|warn|error).
#pragma once

#include <string>

namespace sluice {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the component tag printed on every line, e.g. "data[3]".
void SetLogComponent(const std::string& component);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const std::string& message);

}  // namespace sluice

#define SLUICE_LOG(level, msg)                                                   \
  do {                                                                           \
    if (::sluice::LogEnabled(::sluice::LogLevel::level)) {                       \
      ::sluice::LogLine(::sluice::LogLevel::level, (msg));                       \
    }                                                                            \
  } while (0)
#define LOG_DEBUG(msg) SLUICE_LOG(kDebug, msg)
#define LOG_INFO(msg) SLUICE_LOG(kInfo, msg)
#define LOG_WARN(msg) SLUICE_LOG(kWarn, msg)
#define LOG_ERROR(msg) SLUICE_LOG(kError, msg)
