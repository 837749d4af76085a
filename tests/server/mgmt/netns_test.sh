#!/usr/bin/env bash
# Many hosts, real servers: a whole Sluice cluster across network namespaces,
# one namespace per host, so that nothing may assume loopback or one address.
#
#   hub namespace with a bridge; every host namespace joined to it by a veth
#   pair, with an address of a private /24 this test picks:
#     mgmtd | meta1 meta2 | data1 data2 data3 data4 | client
#   One cluster.toml lists every server at its host's address (ports picked
#   free inside each host). On every server host the same binary runs with the
#   same file: `sluice cluster start --config FILE`, which starts only the
#   servers whose address is local there. Each server host also has its own
#   data_root (the same path, bind-mounted to a directory of its own) and its
#   own /dev/shm, as separate machines would.
#   The client host mounts the cluster twice with sluice-fuse (two client
#   processes), writes a file striped over every chain and a tree of small
#   files spread over both meta shards, renames, reads everything back through
#   the other mount and verifies it, runs the native client (sluice-io500
#   --quick, which verifies what it reads) and `sluice cluster status`.
#   Then data2 is killed with -9: reads still verify (replication 2), status
#   shows it offline and its chains degraded, a new file can be written and
#   read. data2 is started again on its host and comes back serving; every
#   host then stops its servers with `sluice cluster stop`.
# Everything this test creates (namespaces, veths, mounts, processes, temp dir)
# is removed on exit, on failure too; it touches no namespace it did not make.
#   netns_test.sh BIN_DIR
# On failure it prints the tails of every log; SLUICE_NETNS_KEEP_LOGS=DIR also
# copies the logs, each host's data_root and the config there.
set -euo pipefail
BIN=$(cd "$1" && pwd)
ID=$$
NS="sl$ID"                         # namespace names: sl<pid>-<host>
HUB="$NS-hub"
NET="10.$((RANDOM % 200 + 20)).$((RANDOM % 250))"  # only ever inside our namespaces
HOSTS=(mgmtd meta1 meta2 data1 data2 data3 data4 client)
SERVERS=(mgmtd meta1 meta2 data1 data2 data3 data4)
# Servers and mounts started here stop by themselves if this script is killed.
export SLUICE_EXIT_WITH_PID=$$
TMP=$(mktemp -d /tmp/sluice-manyhosts-XXXXXX)
CFG=$TMP/cluster.toml
ROOT=$TMP/root                     # the config's data_root: one path, a directory per host
MA=$TMP/mnt_a
MB=$TMP/mnt_b
LOG=$TMP/logs
PY=/usr/bin/python3
T0=$(date +%s)
mkdir -p "$ROOT" "$MA" "$MB" "$LOG" "$TMP/src"
declare -A ADDR PORT
PIDS=()                            # processes this script started directly
MADE_NS=()

# Our server processes: the pid files of every host, only if the process is
# still the one we started (its command line names our config).
server_pids() {
  local f p
  for f in "$TMP"/hosts/*/run/*.pid; do
    [[ -f $f ]] || continue
    p=$(cat "$f" 2>/dev/null) || continue
    [[ $p =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$CFG" && echo "$p"
  done
  return 0
}
cleanup() {
  local rc=$? m p
  set +e
  trap - EXIT INT TERM
  # The FUSE mounts exist only in the client host's mount namespace: it goes
  # away with its processes (the holder and the sluice-fuse daemons).
  if [[ -n ${HOLDER:-} ]]; then
    for m in "$MB" "$MA"; do
      grep -q " $m " "/proc/$HOLDER/mounts" 2>/dev/null && nsenter -t "$HOLDER" -m umount -l "$m"
    done
  fi
  [[ -n ${WATCHDOG:-} ]] && { pkill -9 -P "$WATCHDOG"; kill -9 "$WATCHDOG"; } 2>/dev/null  # its sleep, then it
  for p in "${PIDS[@]}" $(server_pids); do kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do [[ -z $(server_pids) ]] && break; sleep 0.1; done
  for n in "${MADE_NS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'fail "stopped by a signal (the ${LIMIT:-?} s deadline, or ctest, or ^C)"' INT TERM
# Our own deadline, below ctest's TIMEOUT (which kills without a trap): TERM
# runs the cleanup above. Every step below is bounded, so TERM is seen soon.
LIMIT=${SLUICE_NETNS_LIMIT_S:-150}
( sleep "$LIMIT"; kill -TERM $$ ) 2>/dev/null &
WATCHDOG=$!
fail() {
  echo "FAIL: $*"
  [[ -n ${SLUICE_NETNS_KEEP_LOGS:-} ]] && mkdir -p "$SLUICE_NETNS_KEEP_LOGS" &&
    cp -r "$LOG" "$TMP/hosts" "$CFG" "$SLUICE_NETNS_KEEP_LOGS/"
  for f in "$LOG"/*.txt "$LOG"/*.log "$TMP"/hosts/*/logs/*.log; do
    [[ -s $f ]] && { echo "--- $f"; tail -15 "$f"; }
  done
  exit 1
}
step() { echo "[$(($(date +%s) - T0))s] $*"; }

for t in ip nsenter fusermount3 mount umount "$PY"; do command -v "$t" >/dev/null || fail "$t is missing"; done
[[ $(id -u) -eq 0 ]] || fail "needs root (ip netns)"

# --- the network: a bridge in a hub namespace, one veth pair per host --------
ip netns add "$HUB"
MADE_NS+=("$HUB")
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
i=1
for h in "${HOSTS[@]}"; do
  ip netns add "$NS-$h"
  MADE_NS+=("$NS-$h")
  # Both ends are created inside our namespaces: nothing appears outside them.
  ip -n "$HUB" link add "p$i" type veth peer name eth0 netns "$NS-$h"
  ip -n "$HUB" link set "p$i" master br0 up
  ip -n "$NS-$h" addr add "$NET.$i/24" dev eth0
  ip -n "$NS-$h" link set eth0 up
  ip -n "$NS-$h" link set lo up
  ADDR[$h]="$NET.$i"
  mkdir -p "$TMP/hosts/$h"
  i=$((i + 1))
done

# A port free on the host's own address, picked inside its namespace.
free_port() {
  ip netns exec "$NS-$1" $PY -c \
    'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "${ADDR[$1]}"
}
for h in "${SERVERS[@]}"; do PORT[$h]=$(free_port "$h"); done

cat > "$CFG" <<TOML
# One file for every host; each server finds its own entry by address.
[cluster]
name = "manyhosts"
provider = "tcp"
replication = 2
chunk_size = "1MiB"
stripe_width = 4
lease_ms = 1500
heartbeat_ms = 300
data_root = "$ROOT"
[mgmtd]
host = "${ADDR[mgmtd]}"
port = ${PORT[mgmtd]}
TOML
for i in 1 2; do printf '[[meta]]\nid = %d\nhost = "%s"\nport = %d\n' $i "${ADDR[meta$i]}" "${PORT[meta$i]}" >> "$CFG"; done
for i in 1 2 3 4; do printf '[[data]]\nid = %d\nhost = "%s"\nport = %d\n' $i "${ADDR[data$i]}" "${PORT[data$i]}" >> "$CFG"; done

# Runs a command on server host $1: its network namespace, its own data_root
# (bind-mounted over the config's path in a mount namespace of its own, which
# `ip netns exec` creates and which lives as long as its processes) and /dev/shm.
# Sets ARGV to that command line, so that "${ARGV[@]}" & gives the PID of the
# process itself (ip and sh exec, nothing forks in between).
on_host() {
  local h=$1
  shift
  ARGV=(ip netns exec "$NS-$h" /bin/sh -c
    'mount --bind "$1" "$2" && mount -t tmpfs -o mode=1777 sluice-shm /dev/shm && shift 2 && exec "$@"'
    sh "$TMP/hosts/$h" "$ROOT" "$@")
}
# The client host: a process holds its network namespace and a mount namespace
# of its own (from `ip netns exec`), so its FUSE mounts are seen there only.
ip netns exec "$NS-client" sleep 100000 &
HOLDER=$!
PIDS+=($HOLDER)
in_ns() { [[ $(readlink "/proc/$1/ns/net") == "net:[$(stat -L -c %i "/run/netns/$2")]" ]]; }  # pid netns
for _ in $(seq 1 50); do in_ns "$HOLDER" "$NS-client" && break; sleep 0.1; done
in_ns "$HOLDER" "$NS-client" || fail "could not enter the client host's namespace"
cli() { nsenter -t "$HOLDER" -n -m "$@"; }
# Enters the namespaces (network + mount) of a running server of host $1.
in_host_of() { local p=$1; shift; nsenter -t "$p" -n -m "$@"; }
pid_of() { cat "$TMP/hosts/$1/run/$1.pid"; }

# --- start: the same command on every server host ----------------------------
step "starting 7 servers on 7 hosts ($NET.0/24)"
declare -A STARTER
for h in "${SERVERS[@]}"; do
  on_host "$h" "$BIN/sluice" cluster start --config "$CFG"
  "${ARGV[@]}" > "$LOG/start-$h.txt" 2>&1 &
  STARTER[$h]=$!
  PIDS+=($!)
done
for h in "${SERVERS[@]}"; do
  wait "${STARTER[$h]}" || fail "sluice cluster start on host $h (exit $?)"
  grep -q "is serving" "$LOG/start-$h.txt" || fail "start on $h did not report serving"
done
for h in "${SERVERS[@]}"; do
  [[ -f $TMP/hosts/$h/run/$h.pid ]] || fail "host $h did not start its server $h"
  n=$(ls "$TMP/hosts/$h/run/" | grep -c '\.pid$' || true)
  [[ $n -eq 1 ]] || fail "host $h started $n servers (only $h's address is local there)"
  p=$(pid_of "$h")
  kill -0 "$p" || fail "$h (pid $p) is not running"
  in_ns "$p" "$NS-$h" || fail "$h (pid $p) is not in its host's network namespace"
done

# --- status from the client host: every server serving at its own address ----
status() { cli timeout 20 "$BIN/sluice" cluster status --config "$CFG"; }
status > "$LOG/status1.txt" || fail "cluster status from the client host"
grep -q "127\.0\.0\.1\|localhost" "$LOG/status1.txt" && fail "a loopback address is in the cluster map"
for h in "${SERVERS[@]}"; do
  kind=${h%[0-9]}; kind=${kind%d}   # mgmtd -> mgmt, meta1 -> meta, data3 -> data
  grep -Eq "^$h +$kind +${ADDR[$h]//./\\.}:${PORT[$h]} +online" "$LOG/status1.txt" ||
    fail "$h not online at ${ADDR[$h]}:${PORT[$h]}: $(cat "$LOG/status1.txt")"
done
for t in 101 201 301 401; do
  grep -Eq "^$t +[0-9]+ +serving" "$LOG/status1.txt" || fail "target $t not serving: $(cat "$LOG/status1.txt")"
done
grep -q degraded "$LOG/status1.txt" && fail "chains degraded at start"
[[ $(grep -Ec '^[0-9]+ +([0-9]+ ){2}' "$LOG/status1.txt") -eq 4 ]] || fail "expected 4 chains of 2: $(cat "$LOG/status1.txt")"
step "status from the client host: 7 servers online at their hosts' addresses, 4 targets serving"

# --- the client host: two FUSE mounts (two client processes) -----------------
mount_client() {  # mountpoint log
  nsenter -t "$HOLDER" -n -m "$BIN/sluice-fuse" "$1" --config "$CFG" -f --log "$2" --attr-timeout 0 \
    --entry-timeout 0 > "$2.out" 2>&1 &
  PIDS+=($!)
  local p=$!
  for _ in $(seq 1 200); do
    grep -q " $1 fuse" "/proc/$HOLDER/mounts" && return 0
    kill -0 "$p" 2>/dev/null || fail "sluice-fuse for $1 exited"
    sleep 0.1
  done
  fail "sluice-fuse did not mount $1 in 20 s"
}
mount_client "$MA" "$LOG/fuse_a.log"
FUSE_A=${PIDS[-1]}
mount_client "$MB" "$LOG/fuse_b.log"
FUSE_B=${PIDS[-1]}

# Source data on local disk: 40 MiB striped over every chain (1 MiB chunks,
# stripe 4), and 120 small files in 6 directories (both meta shards).
head -c $((40 << 20)) /dev/urandom > "$TMP/src/big.bin"
$PY - "$TMP/src/tree" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(os.getpid())
for d in range(6):
    p = os.path.join(root, "dir%d" % d, "sub")
    os.makedirs(p)
    for f in range(20):
        with open(os.path.join(p if f % 2 else os.path.dirname(p), "f%02d.dat" % f), "wb") as o:
            o.write(os.urandom(r.choice([0, 1, 4095, 4096, 65537, 300000, 1 << 20 | 17])))
EOF
step "writing through mount A"
cli timeout 60 cp "$TMP/src/big.bin" "$MA/big.bin" || fail "write big.bin"
cli timeout 60 cp -r "$TMP/src/tree" "$MA/tree" || fail "write the tree"
cli timeout 60 mkdir -p "$MA/x/y/z" || fail "mkdir -p"
cli timeout 60 cp "$TMP/src/big.bin" "$MA/x/y/z/big2.bin" || fail "write big2.bin"
cli timeout 60 mv "$MA/x/y/z/big2.bin" "$MA/renamed.bin" || fail "rename across directories"
cli timeout 60 rmdir "$MA/x/y/z" || fail "rmdir"

verify() {  # mountpoint what
  local m=$1
  cli timeout 60 cmp "$TMP/src/big.bin" "$m/big.bin" || fail "$2: big.bin differs or cannot be read"
  cli timeout 60 cmp "$TMP/src/big.bin" "$m/renamed.bin" || fail "$2: renamed.bin differs or cannot be read"
  cli timeout 60 diff -r "$TMP/src/tree" "$m/tree" || fail "$2: the tree differs or cannot be read"
  cli test -e "$m/x/y/z" && fail "$2: removed directory still there"
  cli test -d "$m/x/y" || fail "$2: directory x/y missing"
  return 0
}
verify "$MB" "read back through mount B"
verify "$MA" "read back through mount A"
step "verified through both mounts: 80 MiB in 2 files + 120 files in 12 directories"

# The native client (libsluice without FUSE), its own process: writes, reads
# back and verifies (exit 3 on a verify failure or an I/O error).
cli mkdir "$MA/io500" || fail "mkdir io500"
cli timeout 90 "$BIN/sluice-io500" --quick --no-drop-caches --stonewall 1 \
  --target "native=native:$CFG:/io500" --result-dir "$TMP/io500" > "$LOG/io500.txt" 2>&1 ||
  fail "sluice-io500 --quick with the native client (exit $?)"
step "native client: sluice-io500 --quick completed, reads verified"

# --- kill -9 a data server: reads still verify, status shows it offline ------
VICTIM=$(pid_of data2)
kill -9 "$VICTIM"
alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
for _ in $(seq 1 50); do alive "$VICTIM" || break; sleep 0.1; done
alive "$VICTIM" && fail "data2 (pid $VICTIM) survived kill -9"
step "killed data2 (pid $VICTIM) with -9"
verify "$MB" "with data2 dead (before mgmtd noticed)"
ok=0
for _ in $(seq 1 100); do
  status > "$LOG/status2.txt" 2>&1 || true
  grep -Eq "^data2 +data +.* offline" "$LOG/status2.txt" && { ok=1; break; }
  sleep 0.1
done
[[ $ok -eq 1 ]] || fail "killed data2 not offline in status: $(cat "$LOG/status2.txt")"
grep -Eq "^201 +2 +offline" "$LOG/status2.txt" || fail "target 201 not offline: $(cat "$LOG/status2.txt")"
grep -q "(degraded)" "$LOG/status2.txt" || fail "no chain re-formed without data2: $(cat "$LOG/status2.txt")"
for h in mgmtd meta1 meta2 data1 data3 data4; do
  grep -Eq "^$h +[a-z]+ +${ADDR[$h]//./\\.}:${PORT[$h]} +online" "$LOG/status2.txt" || fail "$h not online after the kill"
done
step "status: data2 offline, its chains degraded, the others online"
verify "$MB" "with data2 offline"
verify "$MA" "with data2 offline (mount A)"
head -c $((9 << 20)) /dev/urandom > "$TMP/src/after.bin"
cli timeout 60 cp "$TMP/src/after.bin" "$MA/after.bin" || fail "write with data2 offline"
cli timeout 60 cmp "$TMP/src/after.bin" "$MB/after.bin" || fail "file written with data2 offline reads back wrong"
step "reads verify and writes work with data2 offline"

# --- data2 returns on its host ------------------------------------------------
on_host data2 "$BIN/sluice" cluster start --config "$CFG"
"${ARGV[@]}" > "$LOG/start-data2-again.txt" 2>&1 ||
  fail "restart data2 on its host"
status > "$LOG/status3.txt" || fail "status after data2 returned"
grep -Eq "^data2 +data +${ADDR[data2]//./\\.}:${PORT[data2]} +online" "$LOG/status3.txt" || fail "data2 not back"
grep -Eq "^201 +2 +serving" "$LOG/status3.txt" || fail "target 201 not serving again: $(cat "$LOG/status3.txt")"
grep -q degraded "$LOG/status3.txt" && fail "chains still degraded after data2 returned"
verify "$MB" "after data2 returned"
cli timeout 60 cmp "$TMP/src/after.bin" "$MB/after.bin" || fail "after.bin differs after data2 returned"
step "data2 back (resynced) and serving; data verifies"

# --- stop: unmount, then every host stops its own servers ---------------------
for m in "$MA" "$MB"; do cli fusermount3 -u "$m" || fail "unmount $m"; done
wait "$FUSE_A" || fail "sluice-fuse of mount A failed"
wait "$FUSE_B" || fail "sluice-fuse of mount B failed"
# Every host at once (mgmtd last, so it hears the others go).
stop_host() {  # host
  local p
  p=$(pid_of "$1")
  in_host_of "$p" "$BIN/sluice" cluster stop --config "$CFG" > "$LOG/stop-$1.txt" 2>&1 || return 1
  grep -q "stopped 1 servers" "$LOG/stop-$1.txt"
}
declare -A STOPPER
for h in data1 data2 data3 data4 meta1 meta2; do
  stop_host "$h" &
  STOPPER[$h]=$!
done
for h in data1 data2 data3 data4 meta1 meta2; do
  wait "${STOPPER[$h]}" || fail "sluice cluster stop on host $h: $(cat "$LOG/stop-$h.txt")"
done
stop_host mgmtd || fail "sluice cluster stop on host mgmtd: $(cat "$LOG/stop-mgmtd.txt")"
[[ -z $(server_pids) ]] || fail "servers still running after stop: $(server_pids)"
step "PASS: 1 mgmtd, 2 meta, 4 data servers on 7 hosts + a client host"
