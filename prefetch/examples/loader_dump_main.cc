// sluice-loader-dump: the C++ loader API in a few lines. Prints, for each
// sample the loader delivers, "epoch step index label crc32c length" (and
// "end <epoch>" at each epoch end). The Python tests compare this output with
// the Python module's, sample by sample.
//
//   sluice-loader-dump PATH [--batch N] [--world W] [--rank R] [--seed S]
//                      [--steps K] [--last-batch drop|pad|repeat|partial] [--block B]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "prefetch/loader.h"

using namespace sluice;
using namespace sluice::prefetch;

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sluice-loader-dump PATH [--batch N] [--world W] [--rank R] [--seed S] "
                    "[--steps K] [--last-batch MODE] [--block B]\n");
    return 2;
  }
  LoaderOptions o;
  uint64_t steps = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--batch") o.batch_size = strtoull(v, nullptr, 10);
    else if (a == "--world") o.world = strtoull(v, nullptr, 10);
    else if (a == "--rank") o.rank = strtoull(v, nullptr, 10);
    else if (a == "--seed") o.seed = strtoull(v, nullptr, 10);
    else if (a == "--steps") steps = strtoull(v, nullptr, 10);
    else if (a == "--block") o.block_size = strtoull(v, nullptr, 10);
    else if (a == "--last-batch") {
      auto lb = ParseLastBatch(v);
      if (!lb.ok()) {
        fprintf(stderr, "%s\n", lb.status().ToString().c_str());
        return 2;
      }
      o.last_batch = *lb;
    } else {
      fprintf(stderr, "unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  auto ds = OpenDataset(argv[1], "auto", {});
  if (!ds.ok()) {
    fprintf(stderr, "sluice-loader-dump: %s\n", ds.status().ToString().c_str());
    return 1;
  }
  auto loader = Loader::Create(std::shared_ptr<const Dataset>(std::move(ds).value()), o);
  if (!loader.ok()) {
    fprintf(stderr, "sluice-loader-dump: %s\n", loader.status().ToString().c_str());
    return 1;
  }
  for (uint64_t s = 0; s < steps;) {
    auto b = (*loader)->Next();
    if (!b.ok()) {
      fprintf(stderr, "sluice-loader-dump: %s\n", b.status().ToString().c_str());
      return 1;
    }
    if (!*b) {
      printf("end %llu\n", static_cast<unsigned long long>((*loader)->epoch() - 1));
      continue;
    }
    const Batch& batch = **b;
    for (size_t i = 0; i < batch.samples.size(); i++) {
      auto bytes = batch.bytes(i);
      printf("%llu %llu %llu %lld %08x %zu\n", static_cast<unsigned long long>(batch.epoch),
             static_cast<unsigned long long>(batch.step),
             static_cast<unsigned long long>(batch.samples[i].index),
             static_cast<long long>(batch.samples[i].label), Crc32c(bytes.data(), bytes.size()),
             bytes.size());
    }
    s++;
  }
  return 0;
}
