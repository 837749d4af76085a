#!/bin/bash
# Accuracy check for the IOR-easy phases: runs sluice-io500 and fio with
# equivalent parameters on the same directory in the same session and prints
# both bandwidths and their ratio.
#
#   tools/io500/compare_fio.sh BIN DIR [RANKS] [MIB_PER_RANK] [ROUNDS]
#
# The machine may be shared and noisy, so the two tools run alternately for
# ROUNDS rounds (default 3) and the median of the per-round ratios is printed.
# Equivalent fio job: one file per process (numjobs=RANKS), sequential 2 MiB
# pwrite/pread (ioengine=psync), fsync before close (end_fsync=1), no
# preallocation (fallocate=none) and no posix_fadvise (fadvise_hint=0): IOR does
# neither; the same
# bytes per process; page cache dropped before each step when root.
set -euo pipefail
BIN=$1
DIR=$2
RANKS=${3:-2}
MIB=${4:-2048}
ROUNDS=${5:-3}
command -v fio >/dev/null || { echo "fio is not installed"; exit 1; }
WORK=$(mktemp -d "$DIR/io500-vs-fio.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/io500" "$WORK/fio"
drop() { if [ -w /proc/sys/vm/drop_caches ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }

ours_run() {  # $1 = round name, then extra options
  local name=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$WORK/cpu-ours-$name" "$BIN" "$@" --ranks "$RANKS" --stonewall 3600 --ior-easy-mib "$MIB" --ior-hard-segments 200 \
    --mdtest-easy-files 1000 --mdtest-hard-files 1000 --no-rnd4k --progress 0 \
    --dir "$WORK/io500" --result-dir "$WORK/res$name" > "$WORK/io500-$name.out" 2>&1
}
fio_run() {  # $1 = write|read, $2 = round
  drop
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%e %U %S" -o "$WORK/cpu-fio-$1-$2" \
  fio --name=easy --directory="$WORK/fio" --rw="$1" --bs=2M --size="${MIB}M" \
      --numjobs="$RANKS" --ioengine=psync --end_fsync=1 --fallocate=none --fadvise_hint=0 --group_reporting \
      --output-format=json > "$WORK/fio-$1-$2.json"
  t1=$(date +%s.%N)
  echo "$t0 $t1" > "$WORK/fio-$1-$2.time"
}
echo "sluice-io500: $RANKS ranks, ior-easy capped at $MIB MiB per rank (cap, not stonewall, ends it)"
echo "fio: numjobs=$RANKS rw=write then read, bs=2M size=${MIB}M ioengine=psync end_fsync=1 fallocate=none fadvise_hint=0"
echo "load average before: $(cat /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  ours_run "$r"
  ours_run "$r-noverify" --no-verify
  fio_run write "$r"
  fio_run read "$r"
  rm -f "$WORK"/fio/*
done
echo "load average after: $(cat /proc/loadavg)"

python3 - "$WORK" "$RANKS" "$MIB" "$ROUNDS" <<'PY'
import json, statistics, sys
work, ranks, mib, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
GiB = 2**30
print(f"{'round':5} {'phase':15} {'sluice-io500':>13} {'no-verify':>11} {'fio bw':>11} "
      f"{'fio wall':>11} {'ratio':>6} {'ratio/wall':>10} {'nv ratio':>8}")
ratios = {"ior-easy-write": [], "ior-easy-read": []}
wratios = {"ior-easy-write": [], "ior-easy-read": []}
nvratios = {"ior-easy-write": [], "ior-easy-read": []}
for rd in range(1, rounds + 1):
    r = json.load(open(f"{work}/res{rd}/target/result.json"))
    ours = {p["name"]: p for p in r["phases"]}
    rnv = json.load(open(f"{work}/res{rd}-noverify/target/result.json"))
    nv = {p["name"]: p for p in rnv["phases"]}
    for ph, rw in (("ior-easy-write", "write"), ("ior-easy-read", "read")):
        j = json.load(open(f"{work}/fio-{rw}-{rd}.json"))
        fio_bw = j["jobs"][0][rw]["bw_bytes"] / GiB
        t0, t1 = map(float, open(f"{work}/fio-{rw}-{rd}.time").read().split())
        wall = ranks * mib * 2**20 / (t1 - t0) / GiB
        o = ours[ph]["score"]
        n = nv[ph]["score"]
        ratios[ph].append(o / fio_bw)
        wratios[ph].append(o / wall)
        nvratios[ph].append(n / fio_bw)
        print(f"{rd:5} {ph:15} {o:7.3f} GiB/s {n:5.3f} GiB/s {fio_bw:5.3f} GiB/s {wall:5.3f} GiB/s "
              f"{o / fio_bw:6.3f} {o / wall:10.3f} {n / fio_bw:8.3f}")
# CPU seconds (user + sys, all processes) per GiB moved: what the harness itself
# costs, which scheduling noise on a shared machine does not change much.
# Ours covers ior-easy write + read plus the tiny capped other phases.
def cpu(path):
    e, u, sy = map(float, open(path).read().split())
    return u + sy
gib = 2 * ranks * mib / 1024  # written + read
ours_cpu = [cpu(f"{work}/cpu-ours-{rd}") / gib for rd in range(1, rounds + 1)]
fio_cpu = [(cpu(f"{work}/cpu-fio-write-{rd}") + cpu(f"{work}/cpu-fio-read-{rd}")) / gib
           for rd in range(1, rounds + 1)]
print(f"CPU s per GiB (write+read): sluice-io500 median {statistics.median(ours_cpu):.3f} "
      f"{[round(x, 3) for x in ours_cpu]}, fio median {statistics.median(fio_cpu):.3f} "
      f"{[round(x, 3) for x in fio_cpu]}")
for ph in ratios:
    print(f"median ratio {ph}: sluice-io500 / fio bw = {statistics.median(ratios[ph]):.3f}, "
          f"/ fio wall-clock = {statistics.median(wratios[ph]):.3f}, "
          f"without verify / fio bw = {statistics.median(nvratios[ph]):.3f}")
PY
