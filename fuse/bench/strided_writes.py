#!/usr/bin/env python3
"""IOR-hard's write pattern on any directory: RANKS processes write BLOCKS
interleaved 47008-byte blocks each into one shared file (block s of rank r at
(s * RANKS + r) * 47008), then print GiB/s. Used to measure a mount's small
strided writes without the whole io500 harness, e.g.

    /usr/bin/python3 fuse/bench/strided_writes.py /mnt/sluice/x.dat 3000
    /usr/bin/python3 fuse/bench/strided_writes.py /tmp/x.dat 3000      # local file system

Usage: strided_writes.py FILE [BLOCKS] [RANKS]
"""
import os
import sys
import time
from multiprocessing import Process

BLOCK = 47008


def rank(path, r, ranks, blocks):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    buf = bytes([65 + r % 26]) * BLOCK
    for s in range(blocks):
        os.pwrite(fd, buf, (s * ranks + r) * BLOCK)
    os.close(fd)  # close-to-open: the writes land before this returns


def main():
    path = sys.argv[1]
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    ranks = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    if os.path.exists(path):
        os.unlink(path)
    t = time.time()
    ps = [Process(target=rank, args=(path, r, ranks, blocks)) for r in range(ranks)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt = time.time() - t
    if any(p.exitcode for p in ps):
        sys.exit("a writer failed")
    print(f"{ranks * blocks * BLOCK / dt / 2**30:.3f} GiB/s ({ranks} x {blocks} blocks of {BLOCK} bytes in {dt:.2f} s)")


if __name__ == "__main__":
    main()
