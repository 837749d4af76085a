#!/usr/bin/env bash
# Many hosts: mgmtd and every server each in its own network namespace (its
# own address, joined by a bridge in a namespace of this test), so nothing may
# assume loopback or a single address. Servers are stand-ins running the real
# MgmtAgent over the real transport; one is killed with -9 and must be seen
# offline, then return.
#   netns_test.sh BIN_DIR
set -euo pipefail
BIN=$1
ID=$$
NET="10.$((RANDOM % 200 + 20)).$((RANDOM % 250))"
BR="sbr$ID"
SW="sluice-sw-$ID"
HOSTS=(mgmt meta1 data1 data2 data3)
TMP=$(mktemp -d /tmp/sluice-netns-XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for h in "${HOSTS[@]}"; do ip netns del "s$ID-$h" 2>/dev/null || true; done
  ip netns del "$SW" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$SW"
ip -n "$SW" link add "$BR" type bridge
ip -n "$SW" link set "$BR" up
i=1
declare -A ADDR
for h in "${HOSTS[@]}"; do
  ns="s$ID-$h"
  ip netns add "$ns"
  ip link add "v$ID$i" type veth peer name "p$ID$i"
  ip link set "v$ID$i" netns "$ns"
  ip link set "p$ID$i" netns "$SW"
  ip -n "$SW" link set "p$ID$i" master "$BR" up
  ip -n "$ns" addr add "$NET.$i/24" dev "v$ID$i"
  ip -n "$ns" link set "v$ID$i" up
  ip -n "$ns" link set lo up
  ADDR[$h]="$NET.$i"
  i=$((i + 1))
done

cat > "$TMP/cluster.toml" <<TOML
[cluster]
replication = 2
lease_ms = 1000
heartbeat_ms = 200
[mgmtd]
host = "${ADDR[mgmt]}"
port = 7000
[[meta]]
id = 1
host = "${ADDR[meta1]}"
port = 7101
[[data]]
id = 1
host = "${ADDR[data1]}"
port = 7201
[[data]]
id = 2
host = "${ADDR[data2]}"
port = 7202
[[data]]
id = 3
host = "${ADDR[data3]}"
port = 7203
TOML

ip netns exec "s$ID-mgmt" "$BIN/sluice-mgmtd" --config "$TMP/cluster.toml" >"$TMP/mgmtd.log" 2>&1 &
PIDS+=($!)
start_agent() {  # kind id
  ip netns exec "s$ID-$1$2" "$BIN/mgmt_agent_proc" "$TMP/cluster.toml" "$1" "$2" >"$TMP/$1$2.log" 2>&1 &
  PIDS+=($!)
  LAST=$!
}
wait_for() {  # file text seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: '$2' not in $1 after $3 s:"; cat "$1"; return 1
}
wait_for "$TMP/mgmtd.log" "serving on ${ADDR[mgmt]}:7000" 10
start_agent meta 1; start_agent data 1; start_agent data 2; D2=$LAST; start_agent data 3
for s in meta1 data1 data2 data3; do wait_for "$TMP/$s.log" REGISTERED 20; done

status() { ip netns exec "s$ID-data1" "$BIN/sluice-cluster" status --config "$TMP/cluster.toml"; }
status > "$TMP/status1.txt"
grep -q "data2 .*${ADDR[data2]}:7202 *online" "$TMP/status1.txt" || { echo "FAIL: data2 not online on its own host"; cat "$TMP/status1.txt"; exit 1; }
if grep -q "127.0.0.1" "$TMP/status1.txt"; then echo "FAIL: a loopback address leaked into the map"; cat "$TMP/status1.txt"; exit 1; fi

kill -9 "$D2"
for _ in $(seq 1 40); do
  status > "$TMP/status2.txt" || true
  grep -q "data2 .* offline" "$TMP/status2.txt" && break
  sleep 0.1
done
grep -q "data2 .* offline" "$TMP/status2.txt" || { echo "FAIL: killed data2 not offline"; cat "$TMP/status2.txt"; exit 1; }
grep -q "(degraded)" "$TMP/status2.txt" || { echo "FAIL: no chain re-formed without data2"; cat "$TMP/status2.txt"; exit 1; }

start_agent data 2
wait_for "$TMP/data2.log" REGISTERED 20
status > "$TMP/status3.txt"
grep -q "data2 .* online" "$TMP/status3.txt" || { echo "FAIL: data2 did not come back"; cat "$TMP/status3.txt"; exit 1; }
grep -q "201 .*syncing" "$TMP/status3.txt" || { echo "FAIL: returning target is not syncing"; cat "$TMP/status3.txt"; exit 1; }
echo "PASS: 5 hosts in network namespaces; kill -9 seen offline, return seen syncing"
cat "$TMP/status3.txt"
