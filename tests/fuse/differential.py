#!/usr/bin/python3
"""Differential test: the same random file-system operations on a Sluice mount
and on a local directory (the kernel's own file system as the oracle); every
result — bytes read, sizes, types, link counts, listings and errno values —
must agree, and the trees must be identical at the end.

    differential.py SLUICE_DIR LOCAL_DIR [OPS] [SEED] [SLUICE_DIR_SEEN_FROM_ANOTHER_MOUNT]

With the last argument the final tree is also read through a second mount of
the same cluster (every file is closed by then: close-to-open consistency).
"""
import errno
import os
import random
import stat
import sys

NAMES = ["a", "b", "c", "d"]
DIRS = ["", "x", "x/y", "z"]


def outcome(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, str(e.errno)))


# Whether the local file system counts a directory's links as 2 + its
# subdirectories (ext4, xfs, tmpfs do; btrfs says 1): set in main().
DIR_NLINK = True


def describe(st):
    kind = stat.S_IFMT(st.st_mode)
    size = st.st_size if stat.S_ISREG(kind) else None  # directory sizes differ by design
    nlink = st.st_nlink if DIR_NLINK or not stat.S_ISDIR(kind) else None
    return (kind, size, nlink, stat.S_IMODE(st.st_mode))


def make_ops(rng):
    def rel():
        return os.path.join(rng.choice(DIRS), rng.choice(NAMES))

    kind = rng.randrange(12)
    if kind <= 2:  # write some bytes somewhere in a file (create if needed)
        path, off = rel(), rng.choice([0, rng.randrange(1 << 20), rng.randrange(5 << 20)])
        data = os.urandom(rng.choice([1, 100, 4096, 47008, 1 << 20, 3 << 20]) if rng.random() < 0.9 else 1)
        flags = os.O_WRONLY | os.O_CREAT | rng.choice([0, 0, os.O_TRUNC, os.O_APPEND])

        def op(root):
            fd = os.open(os.path.join(root, path), flags, 0o644)
            try:
                return os.pwrite(fd, data, off) if not flags & os.O_APPEND else os.write(fd, data)
            finally:
                os.close(fd)
        return f"write {len(data)} at {off} of {path} flags {flags:o}", op
    if kind == 3:  # read
        path, off, n = rel(), rng.randrange(6 << 20), rng.choice([10, 5000, 1 << 20, 4 << 20])

        def op(root):
            fd = os.open(os.path.join(root, path), os.O_RDONLY)
            try:
                return os.pread(fd, n, off)
            finally:
                os.close(fd)
        return f"read {n} at {off} of {path}", op
    if kind == 4:
        path, n = rel(), rng.choice([0, 1, rng.randrange(1 << 20), rng.randrange(6 << 20)])
        return f"truncate {path} to {n}", lambda root: os.truncate(os.path.join(root, path), n)
    if kind == 5:
        path = rel()
        return f"unlink {path}", lambda root: os.unlink(os.path.join(root, path))
    if kind == 6:
        path = rng.choice(DIRS[1:] + [rel()])
        return f"mkdir {path}", lambda root: os.mkdir(os.path.join(root, path), 0o755)
    if kind == 7:
        path = rng.choice(DIRS[1:] + [rel()])
        return f"rmdir {path}", lambda root: os.rmdir(os.path.join(root, path))
    if kind == 8:
        src, dst = rng.choice(DIRS[1:] + [rel()]), rng.choice(DIRS[1:] + [rel()])
        return f"rename {src} -> {dst}", lambda root: os.rename(os.path.join(root, src), os.path.join(root, dst))
    if kind == 9:
        src, dst = rel(), rel()
        return f"link {src} -> {dst}", lambda root: os.link(os.path.join(root, src), os.path.join(root, dst))
    if kind == 10:
        path = rng.choice(DIRS + [rel()])
        return f"stat {path}", lambda root: describe(os.lstat(os.path.join(root, path)))
    path = rng.choice(DIRS)
    return f"listdir {path}", lambda root: sorted(os.listdir(os.path.join(root, path)))


def tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out[os.path.join(rel, d)] = ("dir", os.lstat(os.path.join(dirpath, d)).st_nlink if DIR_NLINK else None)
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.join(rel, f)] = ("file", os.lstat(p).st_nlink, fh.read())
    return out


def main():
    sluice_root, local_root = sys.argv[1], sys.argv[2]
    ops = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 11
    other = sys.argv[5] if len(sys.argv) > 5 else None
    rng = random.Random(seed)
    for root in (sluice_root, local_root):
        os.makedirs(os.path.join(root, "x", "y"), exist_ok=True)
        os.makedirs(os.path.join(root, "z"), exist_ok=True)
    global DIR_NLINK
    DIR_NLINK = os.lstat(local_root).st_nlink == 4  # "x" and "z"
    ok = 0
    for i in range(ops):
        what, op = make_ops(rng)
        got, want = outcome(lambda: op(sluice_root)), outcome(lambda: op(local_root))
        if got != want:
            show = lambda r: (r[0], r[1][:32] + b"..." if isinstance(r[1], bytes) and len(r[1]) > 32 else r[1])
            sys.exit(f"op {i} (seed {seed}): {what}: sluice {show(got)} != local {show(want)}")
        ok += got[0] == "ok"
    b = tree(local_root)
    for name, root in (("sluice", sluice_root), ("the other mount", other)):
        if root is None:
            continue
        a = tree(root)
        if a != b:
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    sys.exit(f"after {ops} ops (seed {seed}): {k} differs: {name} "
                             f"{str(a.get(k))[:80]} != local {str(b.get(k))[:80]}")
    if ok < ops // 4:
        sys.exit(f"only {ok} of {ops} operations succeeded: the sequence covered too little")
    print(f"ok   differential: {ops} operations ({ok} succeeded) agree with the local file system, seed {seed}")


if __name__ == "__main__":
    main()
