"""Trains a small torch model from a packed Sluice data set.

    PYTHONPATH=build-prefetch/python /usr/bin/python3 prefetch/examples/train_tiny.py \
        --bin build-prefetch/bin [--workdir /tmp/sluice-tiny]

Makes a toy 4-class data set (32 float32 features per sample, one file per
sample in class folders), packs it with `sluice-pack`, then trains an MLP for a
few epochs reading through SluiceIterableDataset + torch DataLoader. Halfway
it saves the loader's state_dict, rebuilds the loader from it and carries on,
as a job restarted from a checkpoint would.
"""
import argparse
import os
import shutil
import subprocess

import numpy as np
import torch

from sluice.torch_data import SluiceIterableDataset

FEATURES, CLASSES = 32, 4


def make_dataset(root, per_class=500, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(CLASSES, FEATURES)).astype(np.float32)
    for c in range(CLASSES):
        os.makedirs(f"{root}/class{c}", exist_ok=True)
        for i in range(per_class):
            x = centers[c] + rng.normal(0, 1.5, size=FEATURES).astype(np.float32)
            x.tofile(f"{root}/class{c}/{i:05d}.f32")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin", help="folder holding sluice-pack")
    ap.add_argument("--workdir", default="/tmp/sluice-tiny")
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    make_dataset(f"{args.workdir}/raw")
    subprocess.run([f"{args.bin}/sluice-pack", "--dir", f"{args.workdir}/raw", "--out",
                    f"{args.workdir}/packed"], check=True)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def make_ds(state=None):
        ds = SluiceIterableDataset(f"{args.workdir}/packed", batch_size=64, sample_shape=(FEATURES,),
                                   dtype=np.float32, seed=42, depth=4)
        if state is not None:
            ds.load_state_dict(state)
        return ds

    ds = make_ds()
    for epoch in range(args.epochs):
        if epoch == args.epochs // 2:  # simulate a restart from a checkpoint
            state = ds.state_dict()
            print(f"checkpoint: loader state {state}")
            ds = make_ds(state)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
        correct = total = 0
        loss_sum = 0.0
        for x, y in loader:
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        print(f"epoch {epoch}: {total} samples, loss {loss_sum / total:.4f}, accuracy {correct / total:.3f}")
    if correct / total < 0.9:
        raise SystemExit("model did not learn: accuracy below 0.9")


if __name__ == "__main__":
    main()
