// The POSIX back end: every operation the phases use, and errors that name the path.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/io500/test_dir.h"
#include "tools/io500/backend.h"
#include "tools/io500/posix_backend.h"

namespace sluice::io500 {
namespace {

TEST(PosixBackend, FilesAndDirectories) {
  TempDir dir;
  auto fs_or = MakeFileSystem(dir.path());
  ASSERT_TRUE(fs_or.ok()) << fs_or.status().ToString();
  FileSystem& fs = *fs_or.value();
  EXPECT_EQ(fs.Describe(), "posix:" + dir.path());
  ASSERT_TRUE(fs.Mkdir("d").ok());
  EXPECT_EQ(fs.Mkdir("d").code(), Code::kExists);
  EXPECT_TRUE(fs.MkdirIfMissing("d").ok());

  auto f = fs.Open("d/a", kOpenWrite | kOpenCreate | kOpenTruncate);
  ASSERT_TRUE(f.ok());
  const char msg[] = "hello world";
  ASSERT_TRUE(f.value()->Pwrite(msg, 11, 100).ok());
  ASSERT_TRUE(f.value()->Fsync().ok());
  ASSERT_TRUE(f.value()->Close().ok());
  EXPECT_TRUE(f.value()->Close().ok());  // idempotent

  auto st = fs.Stat("d/a");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 111u);
  EXPECT_TRUE(st->is_regular);
  EXPECT_GT(st->mtime.tv_sec, 0);

  auto r = fs.Open("d/a", kOpenRead);
  ASSERT_TRUE(r.ok());
  char buf[32] = {};
  auto n = r.value()->Pread(buf, sizeof(buf), 100);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 11u);  // short only at end of file
  EXPECT_EQ(std::string(buf, 11), "hello world");

  auto ents = fs.ReadDir("d");
  ASSERT_TRUE(ents.ok());
  ASSERT_EQ(ents->size(), 1u);
  EXPECT_EQ((*ents)[0].name, "a");
  EXPECT_EQ((*ents)[0].type, DirEntry::Type::kFile);

  EXPECT_EQ(fs.Rmdir("d").code(), Code::kNotEmpty);
  ASSERT_TRUE(fs.Unlink("d/a").ok());
  ASSERT_TRUE(fs.Rmdir("d").ok());
}

TEST(PosixBackend, ErrorsNameThePath) {
  TempDir dir;
  PosixFileSystem fs(dir.path());
  auto f = fs.Open("missing/file", kOpenRead);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Code::kNotFound);
  EXPECT_NE(f.status().message().find(dir.path() + "/missing/file"), std::string::npos);
  EXPECT_EQ(fs.Unlink("nope").code(), Code::kNotFound);
  auto e = fs.Open("x", kOpenWrite | kOpenCreate | kOpenExclusive);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(fs.Open("x", kOpenWrite | kOpenCreate | kOpenExclusive).status().code(), Code::kExists);
}

TEST(PosixBackend, RemoveTreeAndTargetSpecs) {
  TempDir dir;
  PosixFileSystem fs(dir.path());
  ASSERT_TRUE(fs.Mkdir("t").ok());
  ASSERT_TRUE(fs.Mkdir("t/u").ok());
  ASSERT_TRUE(fs.Open("t/u/f", kOpenWrite | kOpenCreate).ok());
  ASSERT_TRUE(fs.RemoveTree("t").ok());
  EXPECT_EQ(fs.Stat("t").status().code(), Code::kNotFound);

  EXPECT_TRUE(MakeFileSystem("posix:" + dir.path()).ok());
  EXPECT_EQ(MakeFileSystem(dir.path() + "/nope").status().code(), Code::kNotFound);
  // The native back end names the cluster config it cannot read.
  auto native = MakeFileSystem("native:" + dir.path() + "/no-such-cluster.toml:/io500");
  EXPECT_EQ(native.status().code(), Code::kNotFound) << native.status().ToString();
  EXPECT_NE(native.status().message().find("no-such-cluster.toml"), std::string::npos)
      << native.status().ToString();
}

}  // namespace
}  // namespace sluice::io500
