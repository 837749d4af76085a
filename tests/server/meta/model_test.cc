// Random namespace operations, one at a time, each checked against an
// in-memory model of the tree: create, mkdir, unlink, rmdir, rename (within
// and across shards, replacing, into a descendant) and link must succeed or
// fail exactly as POSIX says, and every so often the whole tree (names,
// types, identities, nlink) must equal the model. Run on one shard and on
// three (most entries and renames then cross shards).
#include <map>
#include <random>
#include <set>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;

// The model: inodes by model id; a directory maps names to model ids.
struct MNode {
  bool dir = false;
  uint64_t ino = 0;   // the real inode it stands for
  uint64_t parent = 0;  // directories: model id of the parent
  std::map<std::string, uint64_t> entries;
  int names = 0;  // files: how many entries name it
};

class Model {
 public:
  Model() {
    MNode root;
    root.dir = true;
    root.ino = kRootIno;
    nodes_[0] = root;
  }
  std::map<uint64_t, MNode> nodes_;
  uint64_t next_ = 1;

  std::vector<uint64_t> Dirs() const {
    std::vector<uint64_t> v;
    for (auto& [id, n] : nodes_) {
      if (n.dir) v.push_back(id);
    }
    return v;
  }
  // Is `a` (a directory) `d` itself or above it?
  bool IsAncestor(uint64_t a, uint64_t d) const {
    for (uint64_t x = d;; x = nodes_.at(x).parent) {
      if (x == a) return true;
      if (x == 0) return false;
    }
  }
};

class NamespaceModelTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("model");
    cluster_ = std::make_unique<MetaCluster>(dir_, GetParam(), /*sync=*/false);
  }
  void TearDown() override {
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }
  ShardRouter& ns() { return cluster_->ns(); }

  // The real tree below `ino` equals the model's below `id`.
  void Compare(const Model& m, uint64_t id, const std::string& path) {
    const MNode& n = m.nodes_.at(id);
    std::map<std::string, DirEntry> real;
    std::string cookie;
    for (;;) {
      auto page = ns().ReadDir(Root(), n.ino, cookie, 7);
      ASSERT_OK(page);
      for (auto& e : page->entries) {
        ASSERT_TRUE(real.emplace(e.name(), e).second) << path << "/" << e.name() << " listed twice";
      }
      if (page->eof) break;
      cookie = page->cookie;
    }
    ASSERT_EQ(real.size(), n.entries.size()) << "entries of " << path;
    int subdirs = 0;
    for (auto& [name, child] : n.entries) {
      auto it = real.find(name);
      ASSERT_NE(it, real.end()) << path << "/" << name << " missing";
      const MNode& c = m.nodes_.at(child);
      EXPECT_EQ(it->second.ino(), c.ino) << path << "/" << name << " names another inode";
      auto a = ns().GetAttr(c.ino);
      ASSERT_OK(a);
      if (c.dir) {
        subdirs++;
        EXPECT_EQ(a->type(), FILE_TYPE_DIRECTORY) << path << "/" << name;
        EXPECT_EQ(a->parent(), n.ino) << path << "/" << name << ": parent pointer";
        Compare(m, child, path + "/" + name);
      } else {
        EXPECT_EQ(a->type(), FILE_TYPE_REGULAR) << path << "/" << name;
        EXPECT_EQ(a->nlink(), static_cast<uint32_t>(c.names)) << path << "/" << name << ": nlink";
      }
    }
    auto self = ns().GetAttr(n.ino);
    ASSERT_OK(self);
    EXPECT_EQ(self->nlink(), static_cast<uint32_t>(2 + subdirs)) << path << ": nlink";
  }

  std::string dir_;
  std::unique_ptr<MetaCluster> cluster_;
};

TEST_P(NamespaceModelTest, RandomOperationsMatchTheModel) {
  const char* env_seed = std::getenv("SLUICE_MODEL_SEED");
  const uint64_t seed = env_seed ? std::strtoull(env_seed, nullptr, 10) : 7;
  SCOPED_TRACE("SLUICE_MODEL_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Model m;
  const std::vector<std::string> names = {"a", "b", "c", "d", "e"};
  auto pick = [&](const std::vector<uint64_t>& v) { return v[rng() % v.size()]; };
  auto name = [&] { return names[rng() % names.size()]; };
  auto code_of = [](const Status& s) { return s.ok() ? Code::kOk : s.code(); };
  std::map<std::string, int> done, refused;  // per operation, to see the run covered each
  auto count = [&](const char* what, bool ok) { (ok ? done : refused)[what]++; };
  for (int op = 0; op < 600; op++) {
    SCOPED_TRACE("op " + std::to_string(op));
    std::vector<uint64_t> dirs = m.Dirs();
    uint64_t d = pick(dirs);
    MNode& dn = m.nodes_.at(d);
    std::string nm = name();
    auto found = dn.entries.find(nm);
    bool exists = found != dn.entries.end();
    switch (rng() % 10) {
      case 0: {  // create O_EXCL
        auto r = ns().Create(Root(), dn.ino, nm, 0644, true);
        ASSERT_EQ(code_of(r.status()), exists ? Code::kExists : Code::kOk) << "create " << nm;
        count("create", r.ok());
        if (r.ok()) {
          MNode f;
          f.ino = r->attr.ino();
          f.names = 1;
          uint64_t id = m.next_++;
          m.nodes_[id] = f;
          m.nodes_.at(d).entries[nm] = id;
        }
        break;
      }
      case 1: {  // mkdir
        auto r = ns().Mkdir(Root(), dn.ino, nm, 0755);
        ASSERT_EQ(code_of(r.status()), exists ? Code::kExists : Code::kOk) << "mkdir " << nm;
        count("mkdir", r.ok());
        if (r.ok()) {
          MNode x;
          x.dir = true;
          x.ino = r->ino();
          x.parent = d;
          uint64_t id = m.next_++;
          m.nodes_[id] = x;
          m.nodes_.at(d).entries[nm] = id;
        }
        break;
      }
      case 2:
      case 7: {  // unlink
        Status s = ns().Unlink(Root(), dn.ino, nm);
        Code want = !exists ? Code::kNotFound : m.nodes_.at(found->second).dir ? Code::kIsDir : Code::kOk;
        ASSERT_EQ(code_of(s), want) << "unlink " << nm << ": " << s.ToString();
        count("unlink", s.ok());
        if (s.ok()) {
          uint64_t id = found->second;
          dn.entries.erase(found);
          if (--m.nodes_.at(id).names == 0) m.nodes_.erase(id);
        }
        break;
      }
      case 3:
      case 8:
      case 9: {  // rmdir
        Status s = ns().Rmdir(Root(), dn.ino, nm);
        Code want = !exists                               ? Code::kNotFound
                    : !m.nodes_.at(found->second).dir     ? Code::kNotDir
                    : !m.nodes_.at(found->second).entries.empty() ? Code::kNotEmpty
                                                          : Code::kOk;
        ASSERT_EQ(code_of(s), want) << "rmdir " << nm << ": " << s.ToString();
        count("rmdir", s.ok());
        if (s.ok()) {
          uint64_t id = found->second;
          dn.entries.erase(found);
          m.nodes_.erase(id);
        }
        break;
      }
      case 4:
      case 5: {  // rename d/nm -> d2/nm2
        uint64_t d2 = pick(dirs);
        std::string nm2 = name();
        uint64_t dst_dir_ino = m.nodes_.at(d2).ino;
        Status s = ns().Rename(Root(), dn.ino, nm, dst_dir_ino, nm2, 0);
        Code want = Code::kOk;
        MNode& dn2 = m.nodes_.at(d2);
        auto dst = dn2.entries.find(nm2);
        if (!exists) {
          want = Code::kNotFound;
        } else {
          uint64_t src = found->second;
          bool src_dir = m.nodes_.at(src).dir;
          if (dst != dn2.entries.end() && dst->second == src) {
            want = Code::kOk;  // the same inode (or the same name): nothing to do
          } else if (src_dir && m.IsAncestor(src, d2)) {
            want = Code::kInvalid;
          } else if (dst != dn2.entries.end() && m.nodes_.at(dst->second).dir && m.IsAncestor(dst->second, d)) {
            want = Code::kNotEmpty;  // the target directory holds the source
          } else if (dst != dn2.entries.end()) {
            const MNode& t = m.nodes_.at(dst->second);
            if (src_dir && !t.dir) want = Code::kNotDir;
            else if (!src_dir && t.dir) want = Code::kIsDir;
            else if (t.dir && !t.entries.empty()) want = Code::kNotEmpty;
          }
        }
        ASSERT_EQ(code_of(s), want) << "rename " << nm << " -> " << nm2 << ": " << s.ToString();
        count(s.ok() && exists && m.nodes_.at(found->second).dir ? "rename dir" : "rename", s.ok());
        if (s.ok() && exists) {
          uint64_t src = found->second;
          if (dst != dn2.entries.end() && dst->second == src) break;
          if (dst != dn2.entries.end()) {
            uint64_t victim = dst->second;
            dn2.entries.erase(dst);
            MNode& v = m.nodes_.at(victim);
            if (v.dir || --v.names == 0) m.nodes_.erase(victim);
          }
          m.nodes_.at(d).entries.erase(nm);
          m.nodes_.at(d2).entries[nm2] = src;
          if (m.nodes_.at(src).dir) m.nodes_.at(src).parent = d2;
        }
        break;
      }
      case 6: {  // hard link of a file somewhere to d2/nm2
        if (!exists || m.nodes_.at(found->second).dir) break;
        uint64_t d2 = pick(dirs);
        std::string nm2 = name();
        MNode& dn2 = m.nodes_.at(d2);
        bool taken = dn2.entries.count(nm2) > 0;
        auto r = ns().Link(Root(), m.nodes_.at(found->second).ino, dn2.ino, nm2);
        ASSERT_EQ(code_of(r.status()), taken ? Code::kExists : Code::kOk) << "link " << nm << " -> " << nm2;
        count("link", r.ok());
        if (r.ok()) {
          dn2.entries[nm2] = found->second;
          m.nodes_.at(found->second).names++;
        }
        break;
      }
    }
    if (op % 50 == 49) {
      Compare(m, 0, "");
      if (HasFatalFailure()) return;
    }
  }
  Compare(m, 0, "");
  if (env_seed) return;  // coverage is checked for the default sequence
  for (const char* what : {"create", "mkdir", "unlink", "rmdir", "rename", "rename dir", "link"}) {
    EXPECT_GE(done[what], 2) << what << " succeeded only " << done[what] << " times: the run did not cover it";
  }
  for (const char* what : {"create", "unlink", "rmdir", "rename"}) {
    EXPECT_GE(refused[what], 3) << what << " was refused only " << refused[what] << " times";
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, NamespaceModelTest, ::testing::Values(1u, 3u),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                           return std::to_string(i.param) + "shards";
                         });

}  // namespace
}  // namespace sluice::meta
