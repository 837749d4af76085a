#include "common/log.h"

#include <sys/time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace sluice {
namespace {

std::mutex g_mu;
std::string g_component = "sluice";

LogLevel ThresholdFromEnv() {
  const char* v = std::getenv("SLUICE_LOG");
  if (!v) return LogLevel::kInfo;
  if (!std::strcmp(v, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(v, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(v, "error")) return LogLevel::kError;
  return LogLevel::kInfo;
}

}  // namespace

void SetLogComponent(const std::string& component) {
  std::lock_guard<std::mutex> l(g_mu);
  g_component = component;
}

bool LogEnabled(LogLevel level) {
  static const LogLevel threshold = ThresholdFromEnv();
  return level >= threshold;
}

void LogLine(LogLevel level, const std::string& message) {
  static const char kTag[] = {'D', 'I', 'W', 'E'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &t);
  std::lock_guard<std::mutex> l(g_mu);
  std::fprintf(stderr, "%s.%03ld %c %s %s\n", ts, static_cast<long>(tv.tv_usec / 1000),
               kTag[static_cast<int>(level)], g_component.c_str(), message.c_str());
  std::fflush(stderr);
}

}  // namespace sluice
