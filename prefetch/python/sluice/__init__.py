"""Sluice's shuffled-sample loader.

    import sluice
    ds = sluice.Dataset("/data/imagenet-packed")          # folder, *.sidx, *.tar, *.tfrecord
    loader = sluice.Loader(ds, batch_size=256, seed=1, rank=r, world=w)
    for batch in loader:                                   # one epoch per loop
        x = batch.numpy(dtype=np.float32, shape=(3, 224, 224))   # no copy when samples are equal-sized
        y = batch.labels
    ckpt = loader.state_dict()                             # a few integers

Data sets stored in Sluice are read natively, through libsluice (no FUSE
mount): give a sluice:// URL and, unless it is the local cluster, where the
cluster is:

    loader = sluice.Loader("sluice:///imagenet/packed", cluster="/etc/sluice/cluster.toml",
                           batch_size=256, seed=1)
    client = sluice.Client("/etc/sluice/cluster.toml")     # or share one connection
    ds = sluice.Dataset("sluice:///imagenet/packed", client=client)

"sluice:///a/b" is /a/b on that cluster; "sluice://host:port/a/b" names
sluice-mgmtd itself. The data set's structure (a packed index, folder
listings) is read through libsluice when it opens; each batch's sample bytes
are read with one libsluice batch read, grouped by data server.

Reading, checking and transforming run on C++ threads with the GIL released.
"""
import numpy as np

from ._sluice import HAS_NATIVE, Batch, Dataset
from ._sluice import Loader as _CoreLoader

__all__ = ["Dataset", "Loader", "Batch", "Client", "PADDING", "REPEAT", "HAS_NATIVE"]
if HAS_NATIVE:
    from ._sluice import Client

SAMPLE, PADDING, REPEAT = 0, 1, 2


def _sample(self, i):
    """Sample i's bytes as a uint8 array view (no copy)."""
    off, n = int(self.offsets[i]), int(self.lengths[i])
    return self.buffer[off:off + n]


def _numpy(self, dtype=np.uint8, shape=None):
    """The batch as one array of shape (len(batch), *shape).

    A view of the batch buffer (no copy) when every sample has the same length
    and they lie back to back, which holds for folder and packed data sets and
    tar shards without padding; otherwise the samples are copied into a new
    array (padding slots become zeros).
    """
    dtype = np.dtype(dtype)
    lengths = self.lengths
    offsets = self.offsets
    n = len(lengths)
    kinds = self.kinds
    real = lengths[kinds != PADDING]
    if len(real) == 0:
        raise ValueError("batch holds only padding")
    size = int(real[0])
    if np.any(real != size):
        raise ValueError("samples differ in length; use batch.sample(i)")
    if size % dtype.itemsize:
        raise ValueError(f"sample length {size} is not a multiple of {dtype}")
    if shape is None:
        shape = (size // dtype.itemsize,)
    contiguous = (np.all(lengths == size) and
                  np.array_equal(offsets, offsets[0] + size * np.arange(n)) and
                  offsets[0] % dtype.itemsize == 0)
    if contiguous:
        start = int(offsets[0])
        return self.buffer[start:start + n * size].view(dtype).reshape((n,) + tuple(shape))
    out = np.zeros((n, size), dtype=np.uint8)
    for i in range(n):
        if kinds[i] != PADDING:
            out[i] = self.sample(i)
    return out.view(dtype).reshape((n,) + tuple(shape))


def _torch(self, dtype=np.uint8, shape=None):
    """(data, labels) as torch tensors sharing memory with the batch."""
    import torch
    return torch.from_numpy(self.numpy(dtype, shape)), torch.from_numpy(self.labels)


Batch.sample = _sample
Batch.numpy = _numpy
Batch.torch = _torch


class Loader:
    """Iterable of batches for one rank; each `for` loop is one epoch.

    dataset: a Dataset, or a path / sluice:// URL to open as one (then
    format, tar_data_ext, cluster and client are passed to Dataset).
    Other arguments mirror the C++ LoaderOptions: batch_size (per rank) or
    global_batch, rank, world, seed, shuffle, last_batch ("drop", "pad",
    "repeat", "partial"), block_size/window_blocks (block shuffle), depth
    (batches read ahead: the memory bound), io_threads, decode_threads,
    skip_corrupt.
    """

    _DATASET_ARGS = ("format", "tar_data_ext", "cluster", "client")

    def __init__(self, dataset, **options):
        ds_args = {k: options.pop(k) for k in self._DATASET_ARGS if k in options}
        if isinstance(dataset, str):
            dataset = Dataset(dataset, skip_corrupt=options.get("skip_corrupt", False), **ds_args)
        elif ds_args:
            raise TypeError(f"{sorted(ds_args)} apply when the data set is given as a path")
        self.dataset = dataset
        self._core = _CoreLoader(dataset, **options)

    def __iter__(self):
        while True:
            batch = self._core.next()
            if batch is None:
                return
            yield batch

    def __len__(self):
        return self._core.steps_per_epoch

    def next(self):
        """Next batch, or None at the end of the epoch."""
        return self._core.next()

    @property
    def epoch(self):
        return self._core.epoch

    @property
    def batch_size(self):
        return self._core.batch_size

    def set_epoch(self, epoch):
        self._core.set_epoch(epoch)

    def state_dict(self):
        return self._core.state_dict()

    def load_state_dict(self, state):
        self._core.load_state_dict(dict(state))

    def stats(self):
        return self._core.stats()
