"""sluice:// data sets read natively through libsluice, against a real local
cluster this test starts (mkdtemp folder, free ports; stopped by
`sluice cluster stop` and by the PIDs in its run/ folder even on failure: the
tests run in a child process, the parent owns the cluster).

The same data set is written to a local folder and, byte for byte, into
Sluice (Client.put). The POSIX loader on the local copy and the native loader
on sluice:// must deliver the same sequence of samples (index, label, bytes)
for the same seed; resume through state_dict (same and other world size)
continues exactly; errors name the sluice:// file and sample.

Run by ctest (prefetch.python_native) with PYTHONPATH=<build>/python and
SLUICE_BIN=<build>/bin.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import sluice

BIN = os.environ.get("SLUICE_BIN", "build/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sequence(loader, epochs):
    """[(epoch, step, [(index, label, kind, bytes), ...]), ...] over `epochs` epochs."""
    out = []
    for _ in range(epochs):
        for b in loader:
            out.append((b.epoch, b.step, [(int(b.indices[i]), int(b.labels[i]), int(b.kinds[i]),
                                           bytes(b.sample(i))) for i in range(len(b))]))
    return out


class NativeLoaderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.environ["SLUICE_PYNATIVE_DIR"]  # the cluster main() started
        cls.cfg = f"{cls.dir}/cluster.toml"

        # The data set: 4 classes, mostly small samples, some larger than a
        # 1 MiB chunk (striped over chains); packed into 1 MiB shards too.
        rng = np.random.default_rng(3)
        local = f"{cls.dir}/local"
        for c in range(4):
            os.makedirs(f"{local}/files/c{c}")
            for i in range(25):
                n = int(rng.integers(1_200_000, 1_800_000)) if i % 9 == 4 else int(rng.integers(1, 60_000))
                rng.integers(0, 256, n, dtype=np.uint8).tofile(f"{local}/files/c{c}/s{i:03d}.bin")
        subprocess.run([f"{BIN}/sluice-pack", "--dir", f"{local}/files", "--out", f"{local}/packed",
                        "--shard-mb", "1"], check=True, stdout=subprocess.DEVNULL, timeout=60)
        cls.local = local
        cls.client = sluice.Client(cls.cfg)
        cls.client.mkdir("/ds")
        copied = cls.client.put(f"{local}/files", "sluice:///ds/files")
        copied += cls.client.put(f"{local}/packed", "/ds/packed")
        on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(local) for f in fs)
        assert copied == on_disk, (copied, on_disk)

    def same_as_posix(self, name, **opts):
        posix = sluice.Loader(f"{self.local}/{name}", **opts)
        before = self.client.stats()["bytes_read"]
        native = sluice.Loader(f"sluice:///ds/{name}", client=self.client, **opts)
        self.assertTrue(native.dataset.native)
        self.assertFalse(posix.dataset.native)
        self.assertTrue(all(f.startswith("sluice:///ds/") for f in native.dataset.files))
        self.assertEqual(len(native.dataset), 100)
        want, got = sequence(posix, 2), sequence(native, 2)
        self.assertGreater(len(want), 2 * 10)
        self.assertEqual(len(got), len(want))
        for w, g in zip(want, got):
            self.assertEqual(w, g, f"{name}: batch (epoch {w[0]}, step {w[1]}) differs")
        # Both epochs' bytes came from the cluster, through this client.
        delivered = sum(len(s[3]) for b in want for s in b[2])
        self.assertGreaterEqual(self.client.stats()["bytes_read"] - before, delivered)
        return want

    def test_packed_sequence_equals_posix(self):
        self.same_as_posix("packed", batch_size=8, seed=11, last_batch="pad", depth=3, io_threads=2)

    def test_folder_sequence_equals_posix(self):
        self.same_as_posix("files", batch_size=7, seed=4, last_batch="partial", depth=2, io_threads=2)

    def test_cluster_option_and_url_forms(self):
        # cluster= connects by itself; a plain absolute path with cluster= is a Sluice path.
        a = sequence(sluice.Loader("sluice:///ds/packed", cluster=self.cfg, batch_size=16, seed=2), 1)
        b = sequence(sluice.Loader("/ds/packed", cluster=self.cfg, batch_size=16, seed=2), 1)
        c = sequence(sluice.Loader(f"{self.local}/packed", batch_size=16, seed=2), 1)
        self.assertEqual(a, c)
        self.assertEqual(b, c)
        with self.assertRaisesRegex(ValueError, "sluice:///ds/packed"):
            sluice.Dataset("sluice://ds/packed", client=self.client)
        with self.assertRaises(ConnectionError):
            sluice.Client(f"127.0.0.1:{free_port()}", deadline_ms=2000)

    def test_resume_equals_uninterrupted(self):
        opts = dict(batch_size=6, seed=9, last_batch="drop", depth=3)
        whole = sequence(sluice.Loader("sluice:///ds/packed", client=self.client, **opts), 2)
        steps = len(whole) // 2  # steps per epoch
        for cut in (0, 5, steps, steps + 3):
            first = sluice.Loader("sluice:///ds/packed", client=self.client, **opts)
            for _ in range(cut):
                if first.next() is None:
                    first.next()
            state = first.state_dict()
            resumed = sluice.Loader("sluice:///ds/packed", client=self.client, **opts)
            resumed.load_state_dict(state)
            epochs_left = 2 - (cut // steps)
            got = sequence(resumed, epochs_left)
            self.assertEqual(got, whole[cut:], f"resume after {cut} steps")

    def test_resume_on_another_world_size(self):
        # Global batch 12 on one rank; after 3 steps continue on 2 ranks of 6:
        # the rest of the epoch is read exactly once, nothing repeated or lost.
        opts = dict(global_batch=12, seed=21, last_batch="drop")
        one = sluice.Loader("sluice:///ds/packed", client=self.client, **opts)
        seen = []
        for _ in range(3):
            seen.extend(int(i) for i in one.next().indices)
        state = one.state_dict()
        rest = []
        for rank in (0, 1):
            part = sluice.Loader("sluice:///ds/packed", client=self.client, rank=rank, world=2, **opts)
            part.load_state_dict(state)
            for b in part:
                rest.extend(int(i) for i in b.indices)
        steps = 100 // 12
        self.assertEqual(len(seen) + len(rest), steps * 12)
        self.assertEqual(len(set(seen + rest)), steps * 12)
        whole = [int(i) for b in sluice.Loader("sluice:///ds/packed", client=self.client, **opts) for i in b.indices]
        self.assertEqual(sorted(seen + rest), sorted(whole))

    def test_torch_iterable_dataset(self):
        import torch
        from sluice.torch_data import SluiceIterableDataset
        root = f"{self.dir}/local/equal"
        for c in range(3):
            os.makedirs(f"{root}/c{c}")
            for i in range(10):
                (np.arange(12, dtype=np.float32) + 100 * c + i).tofile(f"{root}/c{c}/s{i}.bin")
        self.client.put(root, "/ds/equal")
        ds = SluiceIterableDataset("sluice:///ds/equal", 4, client=self.client, sample_shape=(3, 4),
                                   dtype=np.float32, seed=1, last_batch="drop", rank=1, world_size=2)
        labels = []
        for x, y in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0):
            self.assertEqual(tuple(x.shape), (4, 3, 4))
            for k in range(4):  # value 100 * class + i, class = label
                self.assertEqual(int(x[k, 0, 0]) // 100, int(y[k]))
                self.assertTrue(torch.equal(x[k].flatten() - x[k, 0, 0], torch.arange(12, dtype=torch.float32)))
            labels.extend(int(v) for v in y)
        self.assertEqual(len(labels), 30 // 8 * 4)

    def test_errors_name_the_sluice_file_and_sample(self):
        with self.assertRaisesRegex(ValueError, "sluice:///ds/nothing"):
            sluice.Dataset("sluice:///ds/nothing", client=self.client)
        # A packed shard whose data was damaged inside Sluice: CRC32C error naming it.
        self.client.mkdir("/bad")
        self.client.put(f"{self.local}/packed", "/bad/packed")
        shard = "/bad/packed/" + sorted(n for n in self.client.listdir("/bad/packed") if n.endswith(".data"))[0]
        data = bytearray(self.client.read(shard))
        data[0] ^= 0xFF
        self.client.write(shard, bytes(data))
        loader = sluice.Loader("sluice:///bad/packed", client=self.client, batch_size=100, shuffle=False)
        with self.assertRaisesRegex(RuntimeError, r"sluice:///bad/packed/shard-00000\.data' sample 0.*CRC32C"):
            loader.next()
        skipping = sluice.Loader("sluice:///bad/packed", client=self.client, batch_size=100, shuffle=False,
                                 skip_corrupt=True)
        b = skipping.next()
        self.assertEqual((len(b), b.skipped), (99, 1))
        # A data file removed after the data set was opened: the read names it.
        ds = sluice.Dataset("sluice:///bad/packed", client=self.client)
        self.client.remove(shard)
        with self.assertRaisesRegex(RuntimeError, r"sluice:///bad/packed/shard-00000\.data"):
            sluice.Loader(ds, batch_size=100, shuffle=False).next()
        with self.assertRaisesRegex(ValueError, r"sluice:///bad/packed/shard-00000\.data"):
            sluice.Dataset("sluice:///bad/packed", client=self.client)


def start_cluster(d):
    cfg = f"{d}/cluster.toml"
    with open(cfg, "w") as f:
        f.write(f'[cluster]\nname = "pynative"\nreplication = 2\nlease_ms = 1500\nheartbeat_ms = 300\n'
                f'data_root = "{d}"\n[mgmtd]\nport = {free_port()}\n')
        for i in (1, 2):
            f.write(f"[[meta]]\nid = {i}\nport = {free_port()}\n")
        for i in (1, 2, 3, 4):
            f.write(f"[[data]]\nid = {i}\nport = {free_port()}\n")
    # The detached servers stop by themselves if this process is killed.
    os.environ.setdefault("SLUICE_EXIT_WITH_PID", str(os.getpid()))
    start = [f"{BIN}/sluice", "cluster", "start", "--config", cfg]
    r = subprocess.run(start, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:  # a port taken between free_port() and the start: once more
        r = subprocess.run(start, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"cluster start failed:\n{r.stdout}{r.stderr}")


def stop_cluster(d):
    try:
        subprocess.run([f"{BIN}/sluice", "cluster", "stop", "--config", f"{d}/cluster.toml"], capture_output=True,
                       timeout=60)
    finally:
        run = f"{d}/run"
        for name in os.listdir(run) if os.path.isdir(run) else []:
            try:
                with open(f"{run}/{name}") as f:
                    os.kill(int(f.read().split()[0]), signal.SIGKILL)
            except (ValueError, IndexError, OSError):
                pass


def main():
    """Starts the cluster, runs the tests in a child process (so that even a
    crash of the native module cannot leave the cluster running), stops it."""
    if "SLUICE_PYNATIVE_DIR" in os.environ:
        unittest.main(verbosity=2)
        return
    d = tempfile.mkdtemp(prefix="sluice-pynative-")
    try:
        start_cluster(d)
        child = subprocess.run([sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                               env=dict(os.environ, SLUICE_PYNATIVE_DIR=d), timeout=90)
        code = child.returncode
    finally:
        stop_cluster(d)
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
