#!/bin/sh
# examples/etcd-discovery/run.sh — etcd discovery from end to end: an etcd
# server, two example backends that register themselves in it with a lease,
# and wproxy following the registrations; then one backend is killed with
# SIGKILL (no deregistration) and leaves the pool when its lease expires.
#
# Needs the etcd binary (make deps). Ports: ETCD_PORT (23790), PROXY_PORT
# (18080; ADMIN_PORT the next), BACKEND_PORT (19101; BACKEND2_PORT the next),
# ETCD_PEER_PORT (ETCD_PORT + 10). TTL (3s) is the leases'.
set -eu
cd "$(dirname "$0")/../.."
ETCD_PORT=${ETCD_PORT:-23790}
PROXY_PORT=${PROXY_PORT:-18080}
BACKEND_PORT=${BACKEND_PORT:-19101}
TTL=${TTL:-3s}
BACKEND2_PORT=${BACKEND2_PORT:-$((BACKEND_PORT + 1))}
ADMIN_PORT=${ADMIN_PORT:-$((PROXY_PORT + 1))}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 10))}
work=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n== %s\n' "$*"; }
ask() { # ask N: N requests through the proxy, and who answered
	i=0
	while [ "$i" -lt "$1" ]; do
		curl -s "http://127.0.0.1:$PROXY_PORT/" | head -n 1
		i=$((i + 1))
	done | sort | uniq -c
}
wait_for() { # wait_for DESCRIPTION COMMAND...: up to 20 s
	what=$1; shift
	n=0
	until "$@" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ "$n" -gt 200 ]; then echo "timed out waiting for $what" >&2; exit 1; fi
		sleep 0.1
	done
}

say "building wproxy and the example backend"
go build -o "$work/wproxy" ./cmd/wproxy
go build -o "$work/backend" ./examples/backend

say "starting etcd on 127.0.0.1:$ETCD_PORT"
etcd --data-dir "$work/etcd" --log-level warn --logger zap \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" >"$work/etcd.log" 2>&1 &
pids="$pids $!"
wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

cat >"$work/wproxy.yaml" <<YAML
listeners:
  - address: 127.0.0.1:$PROXY_PORT
    routes: [{pool: demo}]
pools:
  demo:
    backends: []
    discovery:
      - etcd: {endpoints: ["http://127.0.0.1:$ETCD_PORT"], prefix: /wproxy/services/demo}
        interval: 500ms
admin: {address: "127.0.0.1:$ADMIN_PORT"}
YAML
say "starting wproxy on 127.0.0.1:$PROXY_PORT (pool demo: no static backend, etcd prefix /wproxy/services/demo)"
"$work/wproxy" run -config "$work/wproxy.yaml" -log-level warn &
pids="$pids $!"
wait_for wproxy curl -s "http://127.0.0.1:$ADMIN_PORT/healthz"

say "starting two backends that register themselves (lease TTL $TTL)"
for n in 1 2; do
	port=$BACKEND_PORT
	[ "$n" = 2 ] && port=$BACKEND2_PORT
	"$work/backend" -name "backend-$n" -listen "127.0.0.1:$port" \
		-etcd "http://127.0.0.1:$ETCD_PORT" -etcd-prefix /wproxy/services/demo -etcd-ttl "$TTL" 2>"$work/backend-$n.log" &
	eval "backend_$n=$!"
	pids="$pids $!"
done
ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ETCD_PORT" get --prefix /wproxy/services/demo
wait_for "both backends in the pool" sh -c "[ \$( (for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:$PROXY_PORT/ | head -n 1; done) | sort -u | wc -l) -eq 2 ]"
ask 6

say "killing backend-1 with SIGKILL: no deregistration, its lease expires after $TTL"
eval "kill -9 \$backend_1"
start=$(date +%s%N)
wait_for "backend-1 to leave" sh -c "! curl -s http://127.0.0.1:$ADMIN_PORT/pools | grep -q 127.0.0.1:$BACKEND_PORT"
echo "backend-1 left the pool $(( ($(date +%s%N) - start) / 1000000 )) ms after SIGKILL"
ask 6
