#!/usr/bin/env bash
# The main job on the embedded default: a local Sluice cluster on loopback
# (1 mgmtd, 2 meta shards, 4 data servers, replication 2), mounted with FUSE,
# doing real work: a training data set is written through the mount, packed,
# read back in a seeded shuffled order by the loader to train a small model,
# and a quick IO500 runs on the mount. The cluster stays up and mounted at the
# end; `build/bin/sluice umount MNT && build/bin/sluice cluster stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/build/bin
export PYTHONPATH=$PWD/build/python${PYTHONPATH:+:$PYTHONPATH}
HOME_DIR=${SLUICE_HOME:-$HOME/.sluice}
MNT=${SLUICE_MNT:-$HOME_DIR/mnt}

step() { printf '\n== %s\n' "$*"; }

step "start the local cluster"
"$BIN/sluice" cluster start
"$BIN/sluice" cluster status

step "mount it at $MNT"
mkdir -p "$MNT"
if ! mountpoint -q "$MNT"; then "$BIN/sluice" mount "$MNT"; fi
df -h "$MNT" | tail -1

step "train a small model from a data set on the mount"
# The example writes a 4-class data set of sample files through the mount,
# packs it with `sluice pack` (data file + FlatBuffers index, on the mount),
# then trains an MLP reading it back in a seeded shuffled order with the
# prefetching loader, restarting once from the loader's state_dict.
WORK="$MNT/main-job"
mkdir -p "$WORK"
/usr/bin/python3 prefetch/examples/train_tiny.py --bin "$BIN" --workdir "$WORK/tiny"
ls -la "$WORK/tiny/packed"

step "IO500 (quick) on the mount"
mkdir -p "$WORK/io500"
"$BIN/sluice" io500 --quick --dir "$WORK/io500" --result-dir "$HOME_DIR/io500-results" || echo "io500 reported an error (see above)"

step "done"
echo "Sluice is running and mounted at $MNT."
echo "  status:  $BIN/sluice cluster status"
echo "  stop:    $BIN/sluice umount $MNT && $BIN/sluice cluster stop"
