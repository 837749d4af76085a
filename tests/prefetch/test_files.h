// Helpers that build small data sets (folders, tar, TFRecord) for the loader tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "prefetch/tfrecord_dataset.h"

namespace sluice::prefetch {

inline std::string MakeTempDir() {
  char tmpl[] = "/tmp/sluice-prefetch-test-XXXXXX";
  char* d = mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d ? std::string(d) : std::string("/tmp");
}

// Distinct, variable-length bytes for (class c, item i).
inline std::string SampleBytes(uint64_t c, uint64_t i) {
  std::string s = "class" + std::to_string(c) + "-item" + std::to_string(i) + ":";
  for (uint64_t k = 0; k < 10 + (c * 7 + i * 13) % 50; k++) s.push_back(static_cast<char>('a' + (c + i + k) % 26));
  return s;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces the file (new inode), so existing mappings keep the old bytes.
inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".writing";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::rename(tmp.c_str(), path.c_str());
}

inline void FlipByte(const std::string& path, uint64_t offset) {
  std::string b = ReadFile(path);
  ASSERT_LT(offset, b.size());
  b[offset] ^= 0x5a;
  WriteFile(path, b);
}

// root/c<k>/item<i>.bin holding SampleBytes(k, i).
inline void MakeClassFolders(const std::string& root, int classes, int per_class) {
  for (int c = 0; c < classes; c++) {
    std::string dir = root + "/c" + std::to_string(c);
    std::filesystem::create_directories(dir);
    for (int i = 0; i < per_class; i++) {
      char name[32];
      snprintf(name, sizeof(name), "/item%04d.bin", i);
      WriteFile(dir + name, SampleBytes(c, i));
    }
  }
}

struct TarMember {
  std::string name;
  std::string data;
};

// A ustar archive; if lie_about_member >= 0 that member's header claims a
// size far past the end of the archive (checksum kept valid).
inline void WriteTar(const std::string& path, const std::vector<TarMember>& members,
                     int lie_about_member = -1) {
  std::string out;
  for (size_t m = 0; m < members.size(); m++) {
    char h[512] = {};
    snprintf(h, 100, "%s", members[m].name.c_str());
    snprintf(h + 100, 8, "%07o", 0644);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    uint64_t size = members[m].data.size();
    if (static_cast<int>(m) == lie_about_member) size = 1 << 30;
    snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
    snprintf(h + 136, 12, "%011o", 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += static_cast<uint8_t>(h[i]);
    snprintf(h + 148, 8, "%06o", sum);
    out.append(h, 512);
    out += members[m].data;
    out.append((512 - members[m].data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  WriteFile(path, out);
}

inline void WriteTfRecord(const std::string& path, const std::vector<std::string>& records) {
  std::string out;
  auto put32 = [&](uint32_t v) { for (int i = 0; i < 4; i++) out.push_back(static_cast<char>(v >> (8 * i))); };
  for (const std::string& r : records) {
    char len[8];
    uint64_t n = r.size();
    for (int i = 0; i < 8; i++) len[i] = static_cast<char>(n >> (8 * i));
    out.append(len, 8);
    put32(MaskCrc(Crc32c(len, 8)));
    out += r;
    put32(MaskCrc(Crc32c(r.data(), r.size())));
  }
  WriteFile(path, out);
}

}  // namespace sluice::prefetch
