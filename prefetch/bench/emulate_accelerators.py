"""Accelerator-emulation benchmark, the MLPerf Storage method.

N emulated accelerators (one process each, as data-parallel training runs
one process per GPU) take a batch, "compute" for the profile's time per batch
(sleep), then meet at a barrier, so the slowest sets the pace. Accelerator
utilisation AU = compute time / wall time, the first step of each epoch
excluded (it follows a page-cache drop). The largest N with AU >= 0.90 is the
result. Page caches are dropped before every epoch (echo 3 >
/proc/sys/vm/drop_caches, needs root) and the disk bytes read per run are
checked against the bytes delivered, so storage really was read.

Loaders compared on the same samples in the same run:
  sluice-folder  sluice.Loader on the sample files (C++ threads, io_uring)
  torch          torch.utils.data.DataLoader(shuffle via DistributedSampler
                 (shuffle=True), num_workers tuned on this machine) reading
                 the same files with open()/read()
  sluice-packed  (extra) sluice.Loader on the same samples packed by sluice-pack
  sluice-native  sluice.Loader on that packed data set stored in a Sluice
                 cluster the benchmark starts on this machine (sluice://,
                 read through libsluice's batch read, no FUSE; the data
                 servers read their chunk files with O_DIRECT, so every
                 epoch comes from the disk whatever the page cache holds)

Memory: PSS (shared pages split between processes) and RSS of every
accelerator process and its children (torch workers), peak over the trial;
for sluice-native also the RSS of the cluster's servers (the storage side).

Profiles (MLPerf Storage H100): resnet50 114,660-byte samples, batch 400,
0.224 s; unet3d 146.6 MB +- 68.3 MB samples, batch 7, 0.323 s. Scaled to this
machine keeping each accelerator's bandwidth demand (bytes per second of
compute) unchanged: resnet50 batch 100 with 0.056 s; unet3d samples 1/16 the
size with 1/16 the compute time (0.0202 s), batch 7.

    PYTHONPATH=build-prefetch/python /usr/bin/python3 prefetch/bench/emulate_accelerators.py \
        --bin build-prefetch/bin [--quick] [--workdir /var/tmp/sluice-bench] [--loaders ...]
"""
import argparse
import warnings
import multiprocessing as mp
import os
import shutil
import signal
import socket
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
    # The marker lives beside the folder: inside it, it would be a sample.
    if os.path.exists(f"{root}/.done"):
        os.rename(f"{root}/.done", f"{root}.done")
    if os.path.exists(f"{root}.done"):
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
    open(f"{root}.done", "w").close()


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


def tree_memory(pid):
    """(PSS, RSS) bytes of pid and all its descendants (PSS: shared pages split)."""
    pss = rss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return pss, rss


# ---------------------------------------------------------------- the Sluice cluster

class BenchCluster:
    """A Sluice cluster on this machine for the sluice-native loader: its own
    config and data under WORKDIR/cluster (kept between runs, so the data
    sets are copied in once), started by `sluice cluster start` and stopped
    (then any pid left in run/ killed) when the benchmark ends, even on error."""

    def __init__(self, workdir, bin_dir, data_servers):
        self.dir = f"{workdir}/cluster"
        self.cfg = f"{self.dir}/cluster.toml"
        self.bin = bin_dir
        self.data_servers = data_servers
        self.started = False

    @staticmethod
    def _free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def start(self):
        if not os.path.exists(self.cfg):
            os.makedirs(self.dir, exist_ok=True)
            with open(self.cfg, "w") as f:
                # Replication 1: reads go to one replica anyway, and this machine has one disk.
                f.write(f'[cluster]\nname = "bench"\nreplication = 1\nchunk_size = "1MiB"\n'
                        f'data_root = "{self.dir}"\n[mgmtd]\nport = {self._free_port()}\n'
                        f'[[meta]]\nid = 1\nport = {self._free_port()}\n')
                for i in range(1, self.data_servers + 1):
                    f.write(f"[[data]]\nid = {i}\nport = {self._free_port()}\n")
        self.started = True
        cmd = [f"{self.bin}/sluice", "cluster", "start", "--config", self.cfg]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"sluice cluster start failed:\n{r.stdout}{r.stderr}")

    def pids(self):
        out = []
        run = f"{self.dir}/run"
        for name in os.listdir(run) if os.path.isdir(run) else []:
            try:
                with open(f"{run}/{name}") as f:
                    out.append(int(f.read().split()[0]))
            except (ValueError, IndexError, OSError):
                pass
        return out

    def server_rss(self):
        return sum(tree_memory(p)[1] for p in self.pids())

    def stop(self):
        if not self.started:
            return
        self.started = False
        try:
            subprocess.run([f"{self.bin}/sluice", "cluster", "stop", "--config", self.cfg], capture_output=True,
                           timeout=120)
        finally:
            for p in self.pids():
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def put(self, local, path):
        """Copies `local` to sluice://`path` once (a marker file records a complete copy). Runs in a
        child process: the benchmark's main process never holds a client (it forks the accelerators)."""
        def body():
            import sluice
            c = sluice.Client(self.cfg)
            try:
                c.stat(f"{path}.complete")
                return
            except OSError:
                pass
            c.mkdir(os.path.dirname(path), parents=True, exist_ok=True)
            t0 = time.perf_counter()
            n = c.put(local, path, threads=4)
            c.write(f"{path}.complete", b"")
            print(f"    copied {n / 1e6:.0f} MB into sluice://{path} in {time.perf_counter() - t0:.1f} s",
                  flush=True)
        p = mp.get_context("fork").Process(target=body)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"copy of {local} into Sluice failed")


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


CLUSTER_CFG = None  # the BenchCluster's config, for sluice-native


def make_iterable(kind, path, rank, world, batch, seed, workers, variable):
    """Returns epoch_iter(epoch) -> iterator of (n_samples, n_bytes) per batch."""
    if kind.startswith("sluice"):
        import sluice
        depth, io_threads = workers  # tuned like torch's num_workers
        ds = sluice.Dataset(path, cluster=CLUSTER_CFG) if kind == "sluice-native" else sluice.Dataset(path)
        loader = sluice.Loader(ds, batch_size=batch, rank=rank, world=world, seed=seed,
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


def run_trial(kind, path, prof, n, epochs, workers, cluster=None):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    q = ctx.Queue()
    procs = [ctx.Process(target=accelerator, args=(kind, path, r, n, prof, epochs, workers, barrier, q))
             for r in range(n)]
    for p in procs:
        p.start()
    peak = [0, 0, 0]  # PSS, RSS of the accelerators; RSS of the cluster's servers
    stop = threading.Event()

    def sample_memory():
        while not stop.is_set():
            mem = [tree_memory(p.pid) for p in procs]
            peak[0] = max(peak[0], sum(m[0] for m in mem))
            peak[1] = max(peak[1], sum(m[1] for m in mem))
            if cluster is not None:
                peak[2] = max(peak[2], cluster.server_rss())
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
                pss_mb=peak[0] / 1e6, rss_mb=peak[1] / 1e6, server_rss_mb=peak[2] / 1e6,
                disk_mb=r0["disk"] / 1e6, delivered_mb=total_bytes / 1e6)


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


def sweep(kind, path, prof, epochs, workers, max_n, cluster=None):
    rows = []
    for n in range(1, max_n + 1):
        files_per_rank_step = prof["batch"] * n
        if prof["files"] // files_per_rank_step < 3:
            break
        r = run_trial(kind, path, prof, n, epochs, workers, cluster)
        rows.append(r)
        servers = f" + servers RSS {r['server_rss_mb']:6.1f} MB" if cluster is not None else ""
        print(f"    {kind:14s} N={n:2d}  AU={r['au']:.3f}  {r['samples_s']:9.1f} samples/s  {r['mb_s']:8.1f} MB/s"
              f"  PSS {r['pss_mb']:7.1f} MB  RSS {r['rss_mb']:7.1f} MB{servers}"
              f"  disk read {r['disk_mb']:8.1f} MB / delivered {r['delivered_mb']:8.1f} MB", flush=True)
        if r["au"] < 0.90:
            break
    passing = [r for r in rows if r["au"] >= 0.90]
    return (passing[-1] if passing else None), rows


LOADERS = ("sluice-folder", "torch", "sluice-packed", "sluice-native")


def main():
    global CLUSTER_CFG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--workdir", default="/var/tmp/sluice-bench")
    ap.add_argument("--quick", action="store_true", help="smaller data sets, one epoch per trial")
    ap.add_argument("--profiles", default="resnet50,unet3d")
    ap.add_argument("--loaders", default=",".join(LOADERS), help="comma-separated subset of " + ", ".join(LOADERS))
    ap.add_argument("--data-servers", type=int, default=2, help="data servers of the sluice-native cluster")
    ap.add_argument("--max-n", type=int, default=12)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("emulate_accelerators: needs root to drop page caches between epochs")
    loaders = [k for k in LOADERS if k in args.loaders.split(",")]
    epochs = 1 if args.quick else 2
    print(f"host: {os.cpu_count()} cores; mode {'quick' if args.quick else 'full'}; {epochs} epoch(s) per trial;"
          f" page caches dropped before every epoch")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on a kill too
    cluster = None
    if "sluice-native" in loaders:
        cluster = BenchCluster(args.workdir, args.bin, args.data_servers)
        CLUSTER_CFG = cluster.cfg
    summary = []
    try:
        if cluster is not None:
            cluster.start()
            print(f"sluice-native: cluster {cluster.cfg} (1 mgmtd, 1 meta, {args.data_servers} data servers,"
                  f" replication 1, 1 MiB chunks)")
        for name in args.profiles.split(","):
            summary.append(run_profile(name, args, loaders, epochs, cluster))
    finally:
        if cluster is not None:
            cluster.stop()

    print("\n== summary (largest N with AU >= 0.90; figures at that N)")
    print(f"{'profile':9s} {'loader':14s} {'N':>3s} {'AU':>6s} {'samples/s':>10s} {'MB/s':>8s} {'PSS MB':>8s}"
          f" {'RSS MB':>8s}   AU at N=1")
    for name, best, tuned in summary:
        for kind in loaders:
            r, r1 = best[kind], best[kind + "/N1"]
            au1 = f"{r1['au']:.3f}" if r1 else "-"
            if r:
                extra = f"  (+ servers RSS {r['server_rss_mb']:.0f} MB)" if kind == "sluice-native" else ""
                print(f"{name:9s} {kind:14s} {r['n']:3d} {r['au']:6.3f} {r['samples_s']:10.1f} {r['mb_s']:8.1f}"
                      f" {r['pss_mb']:8.1f} {r['rss_mb']:8.1f}   {au1}{extra}")
            else:
                print(f"{name:9s} {kind:14s} {0:3d} {'-':>6s} {'-':>10s} {'-':>8s} {'-':>8s} {'-':>8s}   {au1}")
        if "torch" in loaders:
            nt = best["torch"]["n"] if best["torch"] else 0
            for kind in loaders:
                if kind == "torch":
                    continue
                ns = best[kind]["n"] if best[kind] else 0
                ratio = f"{ns / nt:.2f}x" if nt else ("inf (torch reaches none)" if ns else "n/a (neither reaches AU 0.90)")
                print(f"{name:9s} ratio {kind} / torch accelerators: {ratio}")
        print(f"{name:9s} tuning: " + ", ".join(f"{k} {'num_workers' if k == 'torch' else 'depth/io_threads'} {tuned[k]}"
                                               for k in loaders))


def run_profile(name, args, loaders, epochs, cluster):
    prof = dict(PROFILES[name])
    prof["files"] = prof["files"][0 if args.quick else 1]
    root = f"{args.workdir}/{name}-{prof['files']}"
    make_files(f"{root}/files", prof, prof["files"])
    if not os.path.exists(f"{root}/packed/.done"):
        shutil.rmtree(f"{root}/packed", ignore_errors=True)
        subprocess.run([f"{args.bin}/sluice-pack", "--dir", f"{root}/files", "--out", f"{root}/packed"],
                       check=True, stdout=subprocess.DEVNULL)
        open(f"{root}/packed/.done", "w").close()
    native_path = f"/bench/{name}-{prof['files']}/packed"
    if cluster is not None:
        cluster.put(f"{root}/packed", native_path)
    paths = {"sluice-folder": f"{root}/files", "torch": f"{root}/files", "sluice-packed": f"{root}/packed",
             "sluice-native": f"sluice://{native_path}"}
    gb = prof["files"] * prof["mean"] / 1e9
    print(f"\n== {name}: {prof['files']} files (~{gb:.2f} GB), batch {prof['batch']}, "
          f"{prof['compute'] * 1000:.1f} ms compute per batch "
          f"(= {prof['batch'] * prof['mean'] / prof['compute'] / 1e6:.0f} MB/s per accelerator)")
    best = {}
    tuned = {}
    for kind in loaders:
        path = paths[kind]
        if kind == "torch":
            rates = {}
            for w in (1, 2, 4, 8):
                rates[w] = drain_rate("torch", path, prof, w)
                print(f"    torch tuning: num_workers={w}: {rates[w]:.0f} samples/s (1 rank, cold cache)", flush=True)
            cfg = max(rates, key=rates.get)
            print(f"    torch num_workers = {cfg} per accelerator")
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
        best[kind], rows = sweep(kind, path, prof, epochs, cfg, args.max_n,
                                 cluster if kind == "sluice-native" else None)
        best[kind + "/N1"] = rows[0] if rows else None
    return name, best, tuned


if __name__ == "__main__":
    main()
