#!/usr/bin/env bash
# Starts a local cluster (temp dir, free ports) and a FUSE mount of it, runs
# bench_client_io (native vs FUSE vs local ext4), then stops everything.
#   client/bench_client_io.sh [BIN_DIR] [SIZE_GIB] [RAND_OPS]
set -euo pipefail
BIN=${1:-build/bin}
SIZE=${2:-2}
OPS=${3:-4000}
TMP=$(mktemp -d /tmp/sluice-bench-XXXXXX)
CFG=$TMP/cluster.toml
cleanup() {
  set +e
  grep -q " $TMP/mnt " /proc/mounts && { fusermount3 -u "$TMP/mnt" || fusermount3 -uz "$TMP/mnt"; }
  "$BIN/sluice" cluster stop --config "$CFG" >/dev/null 2>&1
  for f in "$TMP"/run/*.pid; do [[ -f $f ]] && kill -9 "$(cat "$f")" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
{
  printf '[cluster]\nname = "bench"\nreplication = 2\ndata_root = "%s"\n[mgmtd]\nport = %d\n' "$TMP" "$(free_port)"
  for i in 1 2; do printf '[[meta]]\nid = %d\nport = %d\n' "$i" "$(free_port)"; done
  for i in 1 2 3 4; do printf '[[data]]\nid = %d\nport = %d\n' "$i" "$(free_port)"; done
} > "$CFG"
"$BIN/sluice" cluster start --config "$CFG" > "$TMP/start.txt" 2>&1 ||
  "$BIN/sluice" cluster start --config "$CFG" >> "$TMP/start.txt" 2>&1 || { cat "$TMP/start.txt"; exit 1; }
mkdir -p "$TMP/mnt" "$TMP/local"
"$BIN/sluice" mount "$TMP/mnt" --config "$CFG"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"
"$BIN/bench_client_io" --cluster "$CFG" --mount "$TMP/mnt" --local "$TMP/local" --size-gib "$SIZE" --rand-ops "$OPS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
