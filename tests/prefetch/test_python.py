"""Python API tests: same sequences as the C++ API, zero-copy batches,
state_dict resume, the torch IterableDataset with rank/world, error messages.

Run by ctest with PYTHONPATH=<build>/python and SLUICE_BIN=<build>/bin.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

import sluice
from sluice.torch_data import SluiceIterableDataset

BIN = os.environ.get("SLUICE_BIN", "build/bin")

_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in bytes(data):
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def write_tar(path, members):
    import tarfile
    import io
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


class PythonApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sluice-pytest-")
        cls.n_classes, cls.per_class = 5, 61  # 305 samples
        members = []
        for c in range(cls.n_classes):
            os.makedirs(f"{cls.dir}/imgs/c{c}")
            for i in range(cls.per_class):
                x = np.arange(12, dtype=np.float32) + (c * 1000 + i)
                x.tofile(f"{cls.dir}/imgs/c{c}/s{i:04d}.bin")
                members.append((f"k{c}_{i:04d}.cls", str(c).encode()))
                members.append((f"k{c}_{i:04d}.bin", x.tobytes()))
        subprocess.run([f"{BIN}/sluice-pack", "--dir", f"{cls.dir}/imgs", "--out", f"{cls.dir}/packed",
                        "--shard-mb", "1"], check=True, stdout=subprocess.DEVNULL)
        os.makedirs(f"{cls.dir}/tar")
        write_tar(f"{cls.dir}/tar/a.tar", members[:300])
        write_tar(f"{cls.dir}/tar/b.tar", members[300:])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def python_lines(self, path, steps, batch, world=1, rank=0, seed=0, last_batch="drop", block=0):
        loader = sluice.Loader(sluice.Dataset(path), batch_size=batch, world=world, rank=rank, seed=seed,
                               last_batch=last_batch, block_size=block)
        lines = []
        s = 0
        while s < steps:
            b = loader.next()
            if b is None:
                lines.append(f"end {loader.epoch - 1}")
                continue
            for i in range(len(b)):
                data = b.sample(i)
                lines.append(f"{b.epoch} {b.step} {b.indices[i]} {b.labels[i]} {crc32c(data):08x} {len(data)}")
            s += 1
        return lines

    def test_cpp_and_python_sequences_identical(self):
        cases = [
            (f"{self.dir}/packed", dict(steps=30, batch=7, world=2, rank=1, seed=5)),
            (f"{self.dir}/imgs", dict(steps=25, batch=16, world=1, rank=0, seed=9, last_batch="pad")),
            (f"{self.dir}/tar", dict(steps=25, batch=5, world=3, rank=2, seed=1, block=20)),
        ]
        for path, kw in cases:
            args = [f"{BIN}/sluice-loader-dump", path, "--batch", str(kw["batch"]), "--world", str(kw["world"]),
                    "--rank", str(kw["rank"]), "--seed", str(kw["seed"]), "--steps", str(kw["steps"]),
                    "--last-batch", kw.get("last_batch", "drop"), "--block", str(kw.get("block", 0))]
            cpp = subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()
            py = self.python_lines(path, **kw)
            self.assertGreater(len(cpp), kw["steps"])
            self.assertEqual(cpp, py, f"C++ and Python differ for {path} {kw}")
            self.assertTrue(any(line.startswith("end") for line in py), "case should cross an epoch end")

    def test_batches_are_zero_copy_numpy_and_torch(self):
        loader = sluice.Loader(f"{self.dir}/packed", batch_size=10, seed=3)
        b = loader.next()
        x = b.numpy(np.float32)
        self.assertEqual(x.shape, (10, 12))
        self.assertEqual(x.ctypes.data, b.buffer.ctypes.data + int(b.offsets[0]))
        t, y = b.torch(np.float32)
        self.assertEqual(t.data_ptr(), x.ctypes.data)
        for i in range(10):
            idx, label = int(b.indices[i]), int(y[i])
            c, k = divmod(idx, self.per_class)
            self.assertEqual(label, c)
            np.testing.assert_array_equal(x[i], np.arange(12, dtype=np.float32) + (c * 1000 + k))
        del loader, b  # the arrays keep the batch buffer alive
        self.assertEqual(float(t[0, 0]), float(x[0, 0]))

    def test_state_dict_resume_equals_uninterrupted(self):
        seed = 1234
        rng = random.Random(seed)
        path = f"{self.dir}/packed"
        opts = dict(batch_size=9, seed=77, last_batch="repeat")
        full = sluice.Loader(path, **opts)
        want = []
        total = 2 * len(full) + 4
        while len(want) < total:
            b = full.next()
            if b is not None:
                want.append(b.indices.tolist())
        for _ in range(5):
            cut = rng.randrange(total)
            a = sluice.Loader(path, **opts)
            got = []
            while len(got) < cut:
                b = a.next()
                if b is not None:
                    got.append(b.indices.tolist())
            state = a.state_dict()
            del a
            c = sluice.Loader(path, **dict(opts, seed=0))
            c.load_state_dict(state)
            while len(got) < total:
                b = c.next()
                if b is not None:
                    got.append(b.indices.tolist())
            self.assertEqual(got, want, f"resume at step {cut} (rng seed {seed})")

    def test_iterable_dataset_ranks_cover_epoch_once(self):
        seen = []
        for rank in range(2):
            ds = SluiceIterableDataset(f"{self.dir}/packed", batch_size=8, rank=rank, world_size=2,
                                       seed=4, sample_shape=(12,), dtype=np.float32)
            dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
            for x, y in dl:
                self.assertEqual(tuple(x.shape), (8, 12))
                self.assertEqual(x.dtype, torch.float32)
                seen.extend(int(v) for v in x[:, 0])  # c*1000 + i identifies the sample
        self.assertEqual(len(seen), 305 - 305 % 16)
        self.assertEqual(len(set(seen)), len(seen))

    def test_iterable_dataset_takes_rank_from_environment(self):
        os.environ["RANK"], os.environ["WORLD_SIZE"] = "1", "2"
        try:
            ds = SluiceIterableDataset(f"{self.dir}/packed", batch_size=8, seed=4)
        finally:
            del os.environ["RANK"], os.environ["WORLD_SIZE"]
        self.assertEqual((ds.rank, ds.world_size), (1, 2))
        direct = sluice.Loader(f"{self.dir}/packed", batch_size=8, rank=1, world=2, seed=4)
        x, y = next(iter(ds))
        self.assertEqual(y.tolist(), direct.next().labels.tolist())

    def test_corrupt_sample_error_names_file_and_sample(self):
        d = tempfile.mkdtemp(prefix="sluice-pytest-bad-")
        try:
            shutil.copytree(f"{self.dir}/packed", f"{d}/packed")
            data = f"{d}/packed/shard-00000.data"
            with open(data, "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0xFF]))
            loader = sluice.Loader(f"{d}/packed", batch_size=305, shuffle=False, last_batch="partial")
            with self.assertRaises(RuntimeError) as ctx:
                loader.next()
            self.assertIn("shard-00000.data' sample 2", str(ctx.exception))
            self.assertIn("CRC32C", str(ctx.exception))
            skipping = sluice.Loader(f"{d}/packed", batch_size=305, shuffle=False, last_batch="partial",
                                     skip_corrupt=True)
            b = skipping.next()
            self.assertEqual(len(b), 304)
            self.assertEqual(b.skipped, 1)
            self.assertNotIn(2, b.indices.tolist())
        finally:
            shutil.rmtree(d)

    def test_pack_from_list_and_missing_file(self):
        d = tempfile.mkdtemp(prefix="sluice-pytest-list-")
        try:
            files = sorted(os.listdir(f"{self.dir}/imgs/c3"))[:5]
            with open(f"{d}/list.txt", "w") as f:
                for i, name in enumerate(files):
                    f.write(f"{self.dir}/imgs/c3/{name}\t{10 + i}\n")
            subprocess.run([f"{BIN}/sluice-pack", "--list", f"{d}/list.txt", "--out", f"{d}/p"], check=True,
                           stdout=subprocess.DEVNULL)
            ds = sluice.Dataset(f"{d}/p")
            self.assertEqual(len(ds), 5)
            self.assertEqual([ds.label(i) for i in range(5)], [10, 11, 12, 13, 14])
            b = sluice.Loader(ds, batch_size=5, shuffle=False).next()
            np.testing.assert_array_equal(b.sample(4), np.fromfile(f"{self.dir}/imgs/c3/{files[4]}", dtype=np.uint8))
            with open(f"{d}/list.txt", "a") as f:
                f.write(f"{d}/missing.bin\t1\n")
            r = subprocess.run([f"{BIN}/sluice-pack", "--list", f"{d}/list.txt", "--out", f"{d}/q"],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("sample 5", r.stderr)
            self.assertIn("missing.bin", r.stderr)
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
