#!/usr/bin/python3
"""POSIX behaviour through a Sluice mount.

    posix_checks.py MOUNT_A MOUNT_B

MOUNT_A and MOUNT_B are two mounts (two clients) of the same cluster. Every
check raises on a difference from what Linux file systems do; the script
exits non-zero with the failed check's name.
"""
import errno
import os
import stat
import sys
import time

A, B = sys.argv[1], sys.argv[2]
ROOT_A = os.path.join(A, "posix")
ROOT_B = os.path.join(B, "posix")
ATTR_WAIT = 1.2  # > the mounts' attr/entry timeout (1 s)
# With the kernel's writeback cache a mount trusts its own i_size of a file it
# has cached (FUSE semantics): a change made through another mount to a file
# this mount already knows is not seen. Only fresh files are checked then.
WRITEBACK = "--writeback-cache" in os.environ.get("SLUICE_FUSE_OPTS", "")
failures = []


def check(name):
    def wrap(fn):
        try:
            fn()
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - report every failure
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            failures.append(name)
        return fn
    return wrap


def expect_errno(err, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == err, f"want {errno.errorcode[err]}, got {errno.errorcode.get(e.errno, e.errno)}"
        return
    raise AssertionError(f"want {errno.errorcode[err]}, call succeeded")


def p(*parts):
    return os.path.join(ROOT_A, *parts)


def write(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


os.makedirs(ROOT_A, exist_ok=True)


@check("O_EXCL on an existing file fails with EEXIST")
def _():
    write(p("excl"), b"x")
    expect_errno(errno.EEXIST, os.open, p("excl"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fd = os.open(p("excl2"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    assert stat.S_IMODE(os.stat(p("excl2")).st_mode) == 0o600


@check("O_TRUNC empties the file")
def _():
    write(p("trunc"), b"0123456789")
    fd = os.open(p("trunc"), os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.stat(p("trunc")).st_size == 0
    assert read(p("trunc")) == b""
    write(p("trunc"), b"ab")
    assert read(p("trunc")) == b"ab", read(p("trunc"))


@check("O_APPEND writes at the end")
def _():
    write(p("app"), b"hello")
    fd = os.open(p("app"), os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b" world")
    os.write(fd, b"!")
    os.close(fd)
    assert read(p("app")) == b"hello world!", read(p("app"))


@check("sparse file: holes read as zeros")
def _():
    fd = os.open(p("sparse"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"A" * 10, 0)
    os.pwrite(fd, b"B" * 10, 5 * 1024 * 1024 + 7)   # several chunks later, mid-chunk
    os.close(fd)
    data = read(p("sparse"))
    assert len(data) == 5 * 1024 * 1024 + 17, len(data)
    assert data[:10] == b"A" * 10
    assert data[10:5 * 1024 * 1024 + 7] == bytes(5 * 1024 * 1024 + 7 - 10), "hole is not zeros"
    assert data[-10:] == b"B" * 10


@check("offsets past 4 GiB")
def _():
    off = (4 << 30) + 12345
    fd = os.open(p("big"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"far away", off)
    os.close(fd)
    st = os.stat(p("big"))
    assert st.st_size == off + 8, st.st_size
    fd = os.open(p("big"), os.O_RDONLY)
    assert os.pread(fd, 8, off) == b"far away"
    assert os.pread(fd, 16, off - 8) == bytes(8) + b"far away"
    assert os.pread(fd, 100, off + 8) == b""
    os.close(fd)


@check("truncate down then up reads zeros past the cut")
def _():
    write(p("tr"), b"x" * (3 * 1024 * 1024 + 100))
    os.truncate(p("tr"), 1024 * 1024 + 10)
    assert os.stat(p("tr")).st_size == 1024 * 1024 + 10
    os.truncate(p("tr"), 4 * 1024 * 1024)
    data = read(p("tr"))
    assert len(data) == 4 * 1024 * 1024
    assert data[:1024 * 1024 + 10] == b"x" * (1024 * 1024 + 10)
    assert data[1024 * 1024 + 10:] == bytes(len(data) - 1024 * 1024 - 10), "old bytes came back after truncate"
    fd = os.open(p("tr"), os.O_RDWR)
    os.ftruncate(fd, 5)
    os.close(fd)
    assert read(p("tr")) == b"xxxxx"


@check("unlinked file stays readable and writable while open")
def _():
    payload = os.urandom(3 * 1024 * 1024 + 5)
    write(p("ghost"), payload)
    fd = os.open(p("ghost"), os.O_RDWR)
    os.unlink(p("ghost"))
    assert not os.path.exists(p("ghost"))
    assert os.fstat(fd).st_size == len(payload)
    os.lseek(fd, 0, os.SEEK_SET)
    got = b""
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        got += b
    assert got == payload, "unlinked file's bytes changed"
    os.pwrite(fd, b"still here", 0)
    assert os.pread(fd, 10, 0) == b"still here"
    os.close(fd)


@check("rename over an open file: the open file keeps its bytes")
def _():
    write(p("victim"), b"old contents")
    write(p("newer"), b"new contents")
    fd = os.open(p("victim"), os.O_RDONLY)
    os.rename(p("newer"), p("victim"))
    assert read(p("victim")) == b"new contents"
    assert os.pread(fd, 100, 0) == b"old contents"
    os.close(fd)
    assert not os.path.exists(p("newer"))


@check("hard links share data and count nlink")
def _():
    write(p("h1"), b"linked")
    os.link(p("h1"), p("h2"))
    assert os.stat(p("h1")).st_nlink == 2
    assert os.stat(p("h1")).st_ino == os.stat(p("h2")).st_ino
    with open(p("h2"), "ab") as f:
        f.write(b" more")
    assert read(p("h1")) == b"linked more"
    os.unlink(p("h1"))
    assert read(p("h2")) == b"linked more", "data lost when one of two links was removed"
    assert os.stat(p("h2")).st_nlink == 1


@check("symlinks")
def _():
    write(p("target"), b"t")
    os.symlink("target", p("sl"))
    assert os.readlink(p("sl")) == "target"
    assert stat.S_ISLNK(os.lstat(p("sl")).st_mode)
    assert read(p("sl")) == b"t"
    os.symlink("nowhere", p("dangling"))
    expect_errno(errno.ENOENT, os.stat, p("dangling"))


@check("chmod and utimens")
def _():
    write(p("perm"), b"p")
    os.chmod(p("perm"), 0o751)
    assert stat.S_IMODE(os.stat(p("perm")).st_mode) == 0o751
    os.utime(p("perm"), ns=(1_000_000_123_000_000, 1_200_000_456_000_000))
    st = os.stat(p("perm"))
    assert st.st_atime_ns == 1_000_000_123_000_000, st.st_atime_ns
    assert st.st_mtime_ns == 1_200_000_456_000_000, st.st_mtime_ns


@check("directories: mkdir, rmdir of non-empty fails, readdir lists all")
def _():
    os.mkdir(p("d"))
    names = {f"f{i:03d}" for i in range(300)}
    for n in names:
        write(p("d", n), n.encode())
    assert set(os.listdir(p("d"))) == names
    # From the other mount (nothing cached there): readdirplus hands the
    # kernel every entry's attributes (looked up in batches).
    seen = {}
    with os.scandir(os.path.join(ROOT_B, "d")) as it:
        for e in it:
            seen[e.name] = (e.inode(), e.stat(follow_symlinks=False).st_size)
    assert set(seen) == names, sorted(set(seen) ^ names)[:5]
    for n, (ino, size) in seen.items():
        assert size == len(n), (n, size)
        assert ino == os.stat(p("d", n)).st_ino, n
    expect_errno(errno.ENOTEMPTY, os.rmdir, p("d"))
    expect_errno(errno.EEXIST, os.mkdir, p("d"))
    expect_errno(errno.ENOENT, os.stat, p("d", "nope"))
    expect_errno(errno.ENOTDIR, os.listdir, p("d", "f000"))
    for n in names:
        os.unlink(p("d", n))
    os.rmdir(p("d"))
    assert not os.path.exists(p("d"))


@check("xattrs")
def _():
    write(p("x"), b"x")
    os.setxattr(p("x"), "user.k", b"v1")
    assert os.getxattr(p("x"), "user.k") == b"v1"
    assert "user.k" in os.listxattr(p("x"))
    os.removexattr(p("x"), "user.k")
    expect_errno(errno.ENODATA, os.getxattr, p("x"), "user.k")


@check("a second mount sees closed files and their size")
def _():
    payload = os.urandom(2 * 1024 * 1024 + 333)
    write(p("shared"), payload)
    time.sleep(ATTR_WAIT)
    other = os.path.join(ROOT_B, "shared")
    assert os.stat(other).st_size == len(payload), os.stat(other).st_size
    assert read(other) == payload
    if WRITEBACK:
        print("     (writeback cache: not checking that A sees B's append to a file A has cached)")
        os.unlink(other)
        return
    # And back: B appends, A sees the new size and bytes after close.
    with open(other, "ab") as f:
        f.write(b"tail")
    time.sleep(ATTR_WAIT)
    assert os.stat(p("shared")).st_size == len(payload) + 4
    assert read(p("shared")) == payload + b"tail"
    # B removes it; A no longer finds it.
    os.unlink(other)
    time.sleep(ATTR_WAIT)
    assert not os.path.exists(p("shared"))


if failures:
    print(f"{len(failures)} check(s) failed: {failures}")
    sys.exit(1)
print("all POSIX checks passed")
