// sluice-pack: packs sample files into shards (data file + FlatBuffers index).
// `sluice pack ...` runs this binary.
//
//   sluice-pack --dir ROOT --out OUT_DIR [--shard-mb N] [--prefix NAME]
//   sluice-pack --list FILE --out OUT_DIR [--shard-mb N] [--prefix NAME]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "prefetch/dataset.h"
#include "prefetch/folder_dataset.h"
#include "prefetch/pack_writer.h"

using namespace sluice;
using namespace sluice::prefetch;

namespace {

int Usage(const char* why) {
  if (why) fprintf(stderr, "sluice-pack: %s\n", why);
  fprintf(stderr,
          "usage: sluice-pack (--dir ROOT | --list FILE) --out OUT_DIR [--shard-mb N] [--prefix NAME]\n"
          "  --dir ROOT    ImageNet-style folder: ROOT/<class>/<sample>; label = class position\n"
          "  --list FILE   one sample per line: PATH or PATH<TAB>LABEL\n"
          "  --out OUT_DIR where <prefix>-NNNNN.data and .sidx shards are written\n"
          "  --shard-mb N  close a shard once it holds N MiB (default 256)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, list, out, prefix = "shard";
  uint64_t shard_mb = 256;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "-h" || a == "--help") return Usage(nullptr);
    if (a != "--dir" && a != "--list" && a != "--out" && a != "--shard-mb" && a != "--prefix") {
      return Usage(("unknown argument '" + a + "'").c_str());
    }
    if (!(v = value())) return Usage((a + " needs a value").c_str());
    if (a == "--dir") dir = v;
    else if (a == "--list") list = v;
    else if (a == "--out") out = v;
    else if (a == "--prefix") prefix = v;
    else if (a == "--shard-mb") {
      char* end = nullptr;
      shard_mb = strtoull(v, &end, 10);
      if (*end || shard_mb == 0) return Usage("--shard-mb needs a positive integer");
    }
  }
  if (out.empty() || dir.empty() == list.empty()) return Usage("give --out and one of --dir, --list");

  std::vector<PackSource> sources;
  std::vector<std::string> classes;
  if (!dir.empty()) {
    auto names = FolderClassNames(dir);
    if (!names.ok()) {
      fprintf(stderr, "sluice-pack: %s\n", names.status().ToString().c_str());
      return 1;
    }
    classes = *names;
    auto ds = OpenDataset(dir, "folder", {});
    if (!ds.ok()) {
      fprintf(stderr, "sluice-pack: %s\n", ds.status().ToString().c_str());
      return 1;
    }
    for (uint64_t i = 0; i < (*ds)->size(); i++) sources.push_back({(*ds)->files()[i], (*ds)->Label(i)});
  } else {
    auto entries = ReadSampleList(list);
    if (!entries.ok()) {
      fprintf(stderr, "sluice-pack: %s\n", entries.status().ToString().c_str());
      return 1;
    }
    for (auto& [path, label] : *entries) sources.push_back({path, label});
  }
  PackOptions opt;
  opt.shard_bytes = shard_mb << 20;
  opt.prefix = prefix;
  auto summary = PackSamples(sources, classes, out, opt);
  if (!summary.ok()) {
    fprintf(stderr, "sluice-pack: %s\n(nothing partial is left visible: shards without a .sidx are ignored)\n",
            summary.status().ToString().c_str());
    return 1;
  }
  printf("packed %llu samples, %llu bytes, into %zu shard(s) under %s\n",
         static_cast<unsigned long long>(summary->samples),
         static_cast<unsigned long long>(summary->bytes), summary->index_files.size(), out.c_str());
  return 0;
}
