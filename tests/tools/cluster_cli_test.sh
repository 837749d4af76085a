#!/usr/bin/env bash
# `sluice cluster` end to end with the real servers: start (idempotent),
# status, kill -9 a data server (offline within the lease, chains re-formed),
# start again (it returns, resyncs, serves), stop and start (nothing lost,
# version kept), and each bad config's error.
#   cluster_cli_test.sh BIN_DIR
set -euo pipefail
BIN=$1
# Servers and mounts started here stop by themselves if this script is killed.
export SLUICE_EXIT_WITH_PID=$$
TMP=$(mktemp -d /tmp/sluice-cli-XXXXXX)
CFG=$TMP/cluster.toml
cleanup() {
  "$BIN/sluice" cluster stop --config "$CFG" >/dev/null 2>&1 || true
  for f in "$TMP"/run/*.pid; do [[ -f $f ]] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  [[ -n ${LISTENER:-} ]] && kill "$LISTENER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

write_config() {
  cat > "$CFG" <<TOML
[cluster]
name = "clitest"
replication = 2
lease_ms = 1500
heartbeat_ms = 300
data_root = "$TMP"
[mgmtd]
port = $(free_port)
[[meta]]
id = 1
port = $(free_port)
[[meta]]
id = 2
port = $(free_port)
TOML
  for d in 1 2 3 4; do printf '[[data]]\nid = %d\nport = %d\n' "$d" "$(free_port)" >> "$CFG"; done
}
write_config

"$BIN/sluice" cluster start --config "$CFG" > "$TMP/start1.txt" || { cat "$TMP/start1.txt"; cat "$TMP"/logs/*.log | tail -30; fail "start"; }
grep -q "is serving" "$TMP/start1.txt" || fail "start did not report serving"
"$BIN/sluice" cluster start --config "$CFG" | grep -q "already running" || fail "second start is not idempotent"
"$BIN/sluice" cluster status --config "$CFG" > "$TMP/status1.txt"
[[ $(grep -c " online" "$TMP/status1.txt") -eq 7 ]] || { cat "$TMP/status1.txt"; fail "not all 7 servers online"; }
grep -q "degraded" "$TMP/status1.txt" && fail "chains degraded at start"
V1=$(sed -n 's/.*map version \([0-9]*\).*/\1/p' "$TMP/status1.txt")

# kill -9 a data server: offline within the lease, its chains re-formed.
PID3=$(cat "$TMP/run/data3.pid")
kill -9 "$PID3"
T0=$(date +%s%N)
for _ in $(seq 1 60); do
  "$BIN/sluice" cluster status --config "$CFG" > "$TMP/status2.txt" || true
  grep -q "data3 .* offline" "$TMP/status2.txt" && break
  sleep 0.1
done
T1=$(date +%s%N)
grep -q "data3 .* offline" "$TMP/status2.txt" || { cat "$TMP/status2.txt"; fail "killed data3 not offline"; }
(( (T1 - T0) / 1000000 < 4000 )) || fail "offline detected only after $(( (T1 - T0) / 1000000 )) ms"
grep -q "(degraded)" "$TMP/status2.txt" || fail "chains not re-formed"
sed -n '/^CHAIN/,/^$/p' "$TMP/status2.txt" | tail -n +2 | cut -c8-31 | grep -qw 301 && fail "target 301 still a chain member"

# start again: only data3 starts; it resyncs and serves.
"$BIN/sluice" cluster start --config "$CFG" > "$TMP/start2.txt" || { cat "$TMP/start2.txt"; fail "restart of data3"; }
"$BIN/sluice" cluster status --config "$CFG" > "$TMP/status3.txt"
[[ $(grep -c " online" "$TMP/status3.txt") -eq 7 ]] || { cat "$TMP/status3.txt"; fail "data3 did not return"; }
grep -q "301 .* serving" "$TMP/status3.txt" || { cat "$TMP/status3.txt"; fail "target 301 not serving after return"; }

# stop, start: the map (and its version) survives.
"$BIN/sluice" cluster stop --config "$CFG" | grep -q "stopped 7 servers" || fail "stop"
for f in "$TMP"/run/*.pid; do [[ -e $f ]] && fail "pid file $f left after stop"; done
"$BIN/sluice" cluster start --config "$CFG" >/dev/null || fail "start after stop"
"$BIN/sluice" cluster status --config "$CFG" > "$TMP/status4.txt"
V4=$(sed -n 's/.*map version \([0-9]*\).*/\1/p' "$TMP/status4.txt")
(( V4 > V1 )) || fail "map version went from $V1 to $V4"
"$BIN/sluice" cluster stop --config "$CFG" >/dev/null

# Servers tied to an owner process (SLUICE_EXIT_WITH_PID, as tests do) stop
# when it is killed with -9, and a later start finds everything.
sleep 600 & OWNER=$!
SLUICE_EXIT_WITH_PID=$OWNER "$BIN/sluice" cluster start --config "$CFG" >/dev/null || fail "start with an owner"
PIDS=$(cat "$TMP"/run/*.pid)
kill -9 "$OWNER"
for i in $(seq 50); do
  alive=0; for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
  (( alive == 0 )) && break; sleep 0.2
done
(( alive == 0 )) || fail "servers still running 10 s after their owner was killed"
grep -q "SLUICE_EXIT_WITH_PID) has exited: stopping" "$TMP"/logs/mgmtd.log || fail "mgmtd did not say why it stopped"
"$BIN/sluice" cluster start --config "$CFG" >/dev/null || fail "start after the owner's servers stopped"
"$BIN/sluice" cluster stop --config "$CFG" >/dev/null

# Bad configs: each error names the file and the field.
bad() {  # expected-text...
  if "$BIN/sluice" cluster start --config "$CFG" > "$TMP/bad.txt" 2>&1; then cat "$TMP/bad.txt"; fail "bad config accepted"; fi
  for t in "$@"; do grep -qF -- "$t" "$TMP/bad.txt" || { cat "$TMP/bad.txt"; fail "error lacks '$t'"; }; done
}
write_config; sed -i 's/^replication = 2/replicaton = 2/' "$CFG"; bad "$CFG:" "unknown key 'replicaton'"
write_config; sed -i 's/^lease_ms = 1500/lease_ms = "long"/' "$CFG"; bad "$CFG:" "cluster.lease_ms must be an integer"
write_config
MPORT=$(sed -n '/\[mgmtd\]/,/^\[/s/^port = //p' "$CFG")
/usr/bin/python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$MPORT)); s.listen(); time.sleep(60)" &
LISTENER=$!; sleep 0.3
bad "$CFG" "[mgmtd] port" "already in use"
kill "$LISTENER"; LISTENER=
write_config; touch "$TMP/plainfile"; printf '[[data]]\nid = 9\nport = %d\ntargets = ["%s/plainfile/sub"]\n' "$(free_port)" "$TMP" >> "$CFG"
bad "$CFG" "[[data]] id=9 targets[0]" "cannot create directory"
write_config; printf '[[chain]]\ntargets = [101, 101]\n' >> "$CFG"; bad "$CFG:" "same host"
echo "PASS: start/status/stop, kill -9 and return, restart keeps the map, bad configs"
