"""Accelerator-emulation benchmark, the MLPerf Storage method.

N emulated accelerators (one process each, as data-parallel training runs
one process per GPU) take a batch, "compute" for the profile's time per batch
(sleep), then meet at a barrier, so the slowest sets the pace. Accelerator
utilisation AU = compute time / wall time, the first step of each epoch
excluded (it follows a page-cache drop). The largest N with AU >= 0.90 is the
result. Page caches are dropped before every epoch (echo 3 >
/proc/sys/vm/drop_caches, needs root) and the disk bytes read per run are
checked against the bytes delivered, so storage really was read.

Loaders compared on the same files in the same run:
  sluice-folder  sluice.Loader on the sample files (C++ threads, io_uring)
  torch          torch.utils.data.DataLoader(shuffle via DistributedSampler
                 (shuffle=True), num_workers tuned on this machine) reading
                 the same files with open()/read()
  sluice-packed  (extra) sluice.Loader on the same samples packed by sluice-pack

Profiles (MLPerf Storage H100): resnet50 114,660-byte samples, batch 400,
0.224 s; unet3d 146.6 MB +- 68.3 MB samples, batch 7, 0.323 s. Scaled to this
machine keeping each accelerator's bandwidth demand (bytes per second of
compute) unchanged: resnet50 batch 100 with 0.056 s; unet3d samples 1/16 the
size with 1/16 the compute time (0.0202 s), batch 7.

    PYTHONPATH=build-prefetch/python /usr/bin/python3 prefetch/bench/emulate_accelerators.py \
        --bin build-prefetch/bin [--quick] [--workdir /var/tmp/sluice-bench]
"""
import argparse
import warnings
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

PROFILES = {
    # name: sample bytes (mean, sd), batch, compute seconds per batch, files (quick, full)
    "resnet50": dict(mean=114_660, sd=0, batch=100, compute=0.224 / 4, files=(6000, 16000)),
    "unet3d": dict(mean=146_600_000 // 16, sd=68_300_000 // 16, batch=7, compute=0.323 / 16,
                   files=(120, 300)),
}


# ---------------------------------------------------------------- data

def make_files(root, prof, n, seed=1):
    if os.path.exists(f"{root}/.done"):
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    classes = 10
    for c in range(classes):
        os.makedirs(f"{root}/c{c}")
    block = rng.integers(0, 256, size=max(prof["mean"] + 4 * prof["sd"], 1), dtype=np.uint8).tobytes()
    for i in range(n):
        size = prof["mean"] if prof["sd"] == 0 else int(np.clip(rng.normal(prof["mean"], prof["sd"]),
                                                                prof["mean"] // 8, len(block)))
        with open(f"{root}/c{i % classes}/s{i:07d}.bin", "wb") as f:
            f.write(i.to_bytes(8, "little") + block[8:size])
    open(f"{root}/.done", "w").close()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def disk_read_bytes():
    """Bytes read from whole block devices (not loop/ram/zram/device-mapper)."""
    disks = {d for d in os.listdir("/sys/block") if not d.startswith(("loop", "ram", "zram", "dm-"))}
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] in disks:
                total += int(p[5]) * 512
    return total


def tree_pss_bytes(pid):
    """PSS of pid and all its descendants (shared pages counted once, split)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return total


# ---------------------------------------------------------------- loaders

class FileDataset:
    """What a user writes for torch: one file per sample, read with open()."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import torch
        with open(self.files[i], "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


def keep_list(batch):
    return batch


def list_files(root):
    out = []
    for c in sorted(os.listdir(root)):
        if os.path.isdir(f"{root}/{c}"):
            out.extend(f"{root}/{c}/{n}" for n in sorted(os.listdir(f"{root}/{c}")))
    return out


def make_iterable(kind, path, rank, world, batch, seed, workers, variable):
    """Returns epoch_iter(epoch) -> iterator of (n_samples, n_bytes) per batch."""
    if kind.startswith("sluice"):
        import sluice
        depth, io_threads = workers  # tuned like torch's num_workers
        loader = sluice.Loader(sluice.Dataset(path), batch_size=batch, rank=rank, world=world, seed=seed,
                               depth=depth, io_threads=io_threads)

        def epoch_iter(epoch):
            for b in loader:
                yield len(b), b.buffer.nbytes
        return epoch_iter
    import torch
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    ds = FileDataset(list_files(path))
    sampler = torch.utils.data.distributed.DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True,
                                                              seed=seed, drop_last=True)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                                     persistent_workers=workers > 0, drop_last=True,
                                     collate_fn=keep_list if variable else None)

    def epoch_iter(epoch):
        sampler.set_epoch(epoch)
        for b in dl:
            if isinstance(b, list):
                yield len(b), sum(t.numel() for t in b)
            else:
                yield b.shape[0], b.numel()
    return epoch_iter


def accelerator(kind, path, rank, world, prof, epochs, workers, barrier, out_q):
    try:
        epoch_iter = make_iterable(kind, path, rank, world, prof["batch"], 7, workers, prof["sd"] > 0)
        compute = prof["compute"]
        busy = wall = 0.0
        samples = nbytes = steps = 0
        disk0 = disk_read_bytes()
        for epoch in range(epochs):
            barrier.wait()
            if rank == 0:
                drop_caches()
            barrier.wait()
            t_prev = None
            for n, b in epoch_iter(epoch):
                time.sleep(compute)
                barrier.wait()
                now = time.perf_counter()
                if t_prev is not None:  # the first step of each epoch is excluded
                    wall += now - t_prev
                    busy += compute
                    steps += 1
                t_prev = now
                samples += n
                nbytes += b
        disk = disk_read_bytes() - disk0
        out_q.put((rank, dict(busy=busy, wall=wall, samples=samples, bytes=nbytes, steps=steps, disk=disk)))
    except Exception as e:  # report, never hang the barrier
        barrier.abort()
        out_q.put((rank, dict(error=f"{type(e).__name__}: {e}")))


def run_trial(kind, path, prof, n, epochs, workers):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    q = ctx.Queue()
    procs = [ctx.Process(target=accelerator, args=(kind, path, r, n, prof, epochs, workers, barrier, q))
             for r in range(n)]
    for p in procs:
        p.start()
    peak = [0]
    stop = threading.Event()

    def sample_memory():
        while not stop.is_set():
            peak[0] = max(peak[0], sum(tree_pss_bytes(p.pid) for p in procs))
            stop.wait(0.5)
    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    results = [q.get() for _ in procs]
    stop.set()
    sampler.join()
    for p in procs:
        p.join()
    by_rank = dict(results)
    errors = [r["error"] for r in by_rank.values() if "error" in r]
    if errors:
        raise RuntimeError(f"{kind} N={n}: {errors[0]}")
    r0 = by_rank[0]
    total_samples = sum(r["samples"] for r in by_rank.values())
    total_bytes = sum(r["bytes"] for r in by_rank.values())
    au = r0["busy"] / r0["wall"] if r0["wall"] > 0 else 0.0
    # Throughput over the timed steps (all accelerators move in lock step).
    timed_samples = r0["steps"] * n * prof["batch"]
    samples_s = timed_samples / r0["wall"] if r0["wall"] > 0 else 0.0
    return dict(n=n, au=au, samples_s=samples_s, mb_s=samples_s * total_bytes / max(1, total_samples) / 1e6,
                pss_mb=peak[0] / 1e6, disk_mb=r0["disk"] / 1e6, delivered_mb=total_bytes / 1e6)


def drain_rate(kind, path, prof, workers, limit_s=6.0):
    """Samples/s of one rank reading as fast as it can (for tuning num_workers)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def body():
        it = make_iterable(kind, path, 0, 1, prof["batch"], 3, workers, prof["sd"] > 0)(0)
        drop_caches()
        t0 = time.perf_counter()
        n = 0
        for k, _ in it:
            n += k
            if time.perf_counter() - t0 > limit_s:
                break
        q.put(n / (time.perf_counter() - t0))
    p = ctx.Process(target=body)
    p.start()
    rate = q.get()
    p.join()
    return rate


def sweep(kind, path, prof, epochs, workers, max_n):
    rows = []
    for n in range(1, max_n + 1):
        files_per_rank_step = prof["batch"] * n
        if prof["files"] // files_per_rank_step < 3:
            break
        r = run_trial(kind, path, prof, n, epochs, workers)
        rows.append(r)
        print(f"    {kind:14s} N={n:2d}  AU={r['au']:.3f}  {r['samples_s']:9.1f} samples/s  {r['mb_s']:8.1f} MB/s"
              f"  PSS {r['pss_mb']:7.1f} MB  disk read {r['disk_mb']:8.1f} MB / delivered {r['delivered_mb']:8.1f} MB",
              flush=True)
        if r["au"] < 0.90:
            break
    passing = [r for r in rows if r["au"] >= 0.90]
    return (passing[-1] if passing else None), rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--workdir", default="/var/tmp/sluice-bench")
    ap.add_argument("--quick", action="store_true", help="smaller data sets, one epoch per trial")
    ap.add_argument("--profiles", default="resnet50,unet3d")
    ap.add_argument("--max-n", type=int, default=12)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("emulate_accelerators: needs root to drop page caches between epochs")
    epochs = 1 if args.quick else 2
    print(f"host: {os.cpu_count()} cores; mode {'quick' if args.quick else 'full'}; {epochs} epoch(s) per trial;"
          f" page caches dropped before every epoch")
    summary = []
    for name in args.profiles.split(","):
        prof = dict(PROFILES[name])
        prof["files"] = prof["files"][0 if args.quick else 1]
        root = f"{args.workdir}/{name}-{prof['files']}"
        make_files(f"{root}/files", prof, prof["files"])
        if not os.path.exists(f"{root}/packed/.done"):
            shutil.rmtree(f"{root}/packed", ignore_errors=True)
            subprocess.run([f"{args.bin}/sluice-pack", "--dir", f"{root}/files", "--out", f"{root}/packed"],
                           check=True, stdout=subprocess.DEVNULL)
            open(f"{root}/packed/.done", "w").close()
        gb = prof["files"] * prof["mean"] / 1e9
        print(f"\n== {name}: {prof['files']} files (~{gb:.2f} GB), batch {prof['batch']}, "
              f"{prof['compute'] * 1000:.1f} ms compute per batch "
              f"(= {prof['batch'] * prof['mean'] / prof['compute'] / 1e6:.0f} MB/s per accelerator)")
        rates = {}
        for w in (1, 2, 4, 8):
            rates[w] = drain_rate("torch", f"{root}/files", prof, w)
            print(f"    torch tuning: num_workers={w}: {rates[w]:.0f} samples/s (1 rank, cold cache)", flush=True)
        best_w = max(rates, key=rates.get)
        print(f"    torch num_workers = {best_w} per accelerator")
        best = {}
        tuned = {}
        for kind, path in (("sluice-folder", f"{root}/files"), ("torch", f"{root}/files"),
                           ("sluice-packed", f"{root}/packed")):
            if kind == "torch":
                cfg = best_w
            else:
                # Tuned like num_workers: read-ahead depth and I/O threads per accelerator; the
                # smallest setting within 5% of the best rate (less memory for the same speed).
                srates = {}
                for c in ((4, 2), (8, 4), (16, 8)):
                    srates[c] = drain_rate(kind, path, prof, c)
                    print(f"    {kind} tuning: depth={c[0]} io_threads={c[1]}: {srates[c]:.0f} samples/s"
                          f" (1 rank, cold cache)", flush=True)
                top = max(srates.values())
                cfg = min((c for c in srates if srates[c] >= 0.95 * top), key=lambda c: c[0])
                print(f"    {kind}: depth, io_threads = {cfg} per accelerator")
            tuned[kind] = cfg
            best[kind], rows = sweep(kind, path, prof, epochs, cfg, args.max_n)
            best[kind + "/N1"] = rows[0] if rows else None
        summary.append((name, best, tuned))

    print("\n== summary (largest N with AU >= 0.90; figures at that N)")
    print(f"{'profile':9s} {'loader':14s} {'N':>3s} {'AU':>6s} {'samples/s':>10s} {'MB/s':>8s} {'PSS MB':>8s}"
          f"   AU at N=1")
    for name, best, tuned in summary:
        for kind in ("sluice-folder", "torch", "sluice-packed"):
            r, r1 = best[kind], best[kind + "/N1"]
            au1 = f"{r1['au']:.3f}" if r1 else "-"
            if r:
                print(f"{name:9s} {kind:14s} {r['n']:3d} {r['au']:6.3f} {r['samples_s']:10.1f} {r['mb_s']:8.1f}"
                      f" {r['pss_mb']:8.1f}   {au1}")
            else:
                print(f"{name:9s} {kind:14s} {0:3d} {'-':>6s} {'-':>10s} {'-':>8s} {'-':>8s}   {au1}")
        ns = best["sluice-folder"]["n"] if best["sluice-folder"] else 0
        nt = best["torch"]["n"] if best["torch"] else 0
        ratio = f"{ns / nt:.2f}x" if nt else ("inf" if ns else "n/a (neither reaches AU 0.90)")
        print(f"{name:9s} ratio sluice-folder / torch accelerators: {ratio}  (torch num_workers={tuned['torch']},"
              f" sluice depth/io_threads folder {tuned['sluice-folder']}, packed {tuned['sluice-packed']})")


if __name__ == "__main__":
    main()
