#!/bin/bash
# A --quick run with two MPI ranks (Open MPI, as root in CI): every phase runs
# on both ranks without errors, and both ranks' work is counted.
set -u
MPIRUN=$1
BIN=$2
DIR=$(mktemp -d /tmp/io500-mpi.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/data"
"$MPIRUN" --allow-run-as-root --oversubscribe -np 2 "$BIN" --mpi --quick --no-rnd4k --no-drop-caches \
  --progress 0 --mdtest-easy-files 200 --mdtest-hard-files 200 --ior-hard-segments 100 \
  --ior-easy-mib 8 --dir "$DIR/data" --result-dir "$DIR/res" > "$DIR/out.txt" 2>&1
rc=$?
cat "$DIR/out.txt"
if [ $rc -ne 0 ]; then echo "FAIL: exit code $rc"; exit 1; fi
python3 - "$DIR/res/target/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ranks"] == 2, r["ranks"]
assert "MPI ranks" in r["ranks_description"], r["ranks_description"]
names = [p["name"] for p in r["phases"]]
assert len(names) == 13, names
for p in r["phases"]:
    assert p["errors"] == 0, p
m = {p["name"]: p for p in r["phases"]}
for n in ["mdtest-hard-write", "mdtest-hard-stat", "mdtest-hard-read", "mdtest-hard-delete"]:
    assert m[n]["items"] == 400, (n, m[n]["items"])
assert m["ior-easy-read"]["items"] == m["ior-easy-write"]["items"] == 2 * 8 * 2**20
assert m["ior-hard-read"]["items"] == m["ior-hard-write"]["items"] == 2 * 100 * 47008
assert r["score"]["total"] > 0
print("PASS")
PY
