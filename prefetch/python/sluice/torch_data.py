"""PyTorch integration: an IterableDataset over a Sluice loader.

    ds = SluiceIterableDataset("/data/packed", batch_size=64, sample_shape=(3, 32, 32),
                               dtype=np.uint8)
    for x, y in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0):
        ...
    SluiceIterableDataset("sluice:///data/packed", 64, cluster="cluster.toml")   # read natively


Batches come already formed (use batch_size=None in DataLoader) and are read
on Sluice's C++ threads; DataLoader worker processes would only duplicate
that work, so num_workers must be 0. Rank and world size come from
torch.distributed when it is initialised, else from RANK/WORLD_SIZE, else 0/1.
"""
import os

import numpy as np
import torch

from . import Loader


def _rank_world(rank, world_size):
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class SluiceIterableDataset(torch.utils.data.IterableDataset):
    """Yields (data, labels) tensors per batch for this rank; one pass = one epoch."""

    def __init__(self, path, batch_size, *, sample_shape=None, dtype=np.uint8, rank=None,
                 world_size=None, **loader_options):
        super().__init__()
        self.path = path
        self.sample_shape = sample_shape
        self.dtype = dtype
        self.rank, self.world_size = _rank_world(rank, world_size)
        self._options = dict(loader_options, batch_size=batch_size, rank=self.rank,
                             world=self.world_size)
        self._loader = None
        self._pending_state = None

    def _ensure(self):
        if self._loader is None:
            self._loader = Loader(self.path, **self._options)
            if self._pending_state is not None:
                self._loader.load_state_dict(self._pending_state)
                self._pending_state = None
        return self._loader

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None and info.num_workers > 1:
            raise RuntimeError("SluiceIterableDataset reads on C++ threads; use DataLoader(num_workers=0)")
        for batch in self._ensure():
            yield batch.torch(self.dtype, self.sample_shape)

    def __len__(self):
        return len(self._ensure())

    def set_epoch(self, epoch):
        self._ensure().set_epoch(epoch)

    def state_dict(self):
        return self._ensure().state_dict()

    def load_state_dict(self, state):
        if self._loader is None:
            self._pending_state = dict(state)
        else:
            self._loader.load_state_dict(state)
