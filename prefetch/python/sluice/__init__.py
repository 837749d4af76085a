"""Sluice's shuffled-sample loader.

    import sluice
    ds = sluice.Dataset("/data/imagenet-packed")          # folder, *.sidx, *.tar, *.tfrecord
    loader = sluice.Loader(ds, batch_size=256, seed=1, rank=r, world=w)
    for batch in loader:                                   # one epoch per loop
        x = batch.numpy(dtype=np.float32, shape=(3, 224, 224))   # no copy when samples are equal-sized
        y = batch.labels
    ckpt = loader.state_dict()                             # a few integers

Reading, checking and transforming run on C++ threads with the GIL released.
"""
import numpy as np

from ._sluice import Batch, Dataset
from ._sluice import Loader as _CoreLoader

__all__ = ["Dataset", "Loader", "Batch", "PADDING", "REPEAT"]

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

    Arguments mirror the C++ LoaderOptions: batch_size (per rank) or
    global_batch, rank, world, seed, shuffle, last_batch ("drop", "pad",
    "repeat", "partial"), block_size/window_blocks (block shuffle), depth
    (batches read ahead: the memory bound), io_threads, decode_threads,
    skip_corrupt.
    """

    def __init__(self, dataset, **options):
        if isinstance(dataset, str):
            dataset = Dataset(dataset, skip_corrupt=options.get("skip_corrupt", False))
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
