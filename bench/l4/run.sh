#!/usr/bin/env bash
# bench/l4/run.sh — TCP throughput through wproxy's L4 proxy (core/l4, run by
# bench/l4/l4proxy) beside HAProxy in mode tcp, and straight to the backend.
#
# One backend (bench/l4/tcpload sink: reads to EOF, answers the count) and
# one client (tcpload send: SIZE bytes in all, client to backend). Two loads:
# one connection carrying SIZE, and CONNS connections at once carrying
# SIZE/CONNS each. Each round measures every target with both loads, each
# round starting with another target; the script prints the median of the
# throughput and of the proxy's CPU time per GiB (user+system of the proxy
# process), and the median of the per-round ratios wproxy/HAProxy with the
# lowest and highest round. Both proxies run with WORKERS threads
# (GOMAXPROCS, nbthread). HAProxy splices both ways (option splice-request
# and splice-response, 1 MiB pipes like Go's: HAPROXY_SPLICE=on, its fastest
# here); HAPROXY_SPLICE=auto (option splice-auto) or off copy through its
# buffers instead most of the time, at less than half the throughput.
#
# Environment: ROUNDS (5), SIZE (2GiB), CONNS (50), WORKERS (1),
# BASE_PORT (19300), HAPROXY_SPLICE (on). Needs go, haproxy and bash.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-2GiB}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}
BASE=${BASE_PORT:-19300}
HAPROXY_SPLICE=${HAPROXY_SPLICE:-on}
export PATH=$PATH:/usr/sbin
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }

work=$(mktemp -d /tmp/wproxy-l4.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -o "$work/l4proxy" ./bench/l4/l4proxy
go build -trimpath -o "$work/tcpload" ./bench/l4/tcpload

B=$BASE
declare -A PORT=([direct]=$B [wproxy]=$((BASE + 10)) [haproxy]=$((BASE + 11)))
TARGETS="direct wproxy haproxy"

case $HAPROXY_SPLICE in
on) splice=$'option splice-request\n  option splice-response' ;;
auto) splice="option splice-auto" ;;
off) splice="" ;;
*) echo "HAPROXY_SPLICE is on, auto or off" >&2; exit 1 ;;
esac
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 4000
  tune.pipesize 1048576
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  $splice
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  server b1 127.0.0.1:$B
CONF

declare -A PID
"$work/tcpload" sink -listen "127.0.0.1:$B" >>"$work/sink.log" 2>&1 &
pids+=($!)
GOMAXPROCS=$WORKERS "$work/l4proxy" -listen "127.0.0.1:${PORT[wproxy]}" -backends "127.0.0.1:$B" >>"$work/l4proxy.log" 2>&1 &
pids+=($!)
PID[wproxy]=$!
haproxy -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 &
pids+=($!)
PID[haproxy]=$!

# send TARGET CONNS BYTES: prints bytes per second.
send() { "$work/tcpload" send -addr "127.0.0.1:${PORT[$1]}" -conns "$2" -bytes "$3" | sed -n 's/.*bytes_per_sec=//p'; }

wait_target() {
	for _ in $(seq 1 100); do
		send "$1" 1 1KiB >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "$1 does not answer on port ${PORT[$1]}" >&2
	cat "$work"/*.log >&2
	return 1
}
for t in $TARGETS; do wait_target "$t"; done

# cpu_ticks PID: user+system clock ticks of a process and its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# Warm-up: connections, pipes, page cache of the binaries.
for t in $TARGETS; do send "$t" "$CONNS" 256MiB >/dev/null; send "$t" 1 256MiB >/dev/null; done

LOADS="single multi"
declare -A LCONNS=([single]=1 [multi]=$CONNS)
declare -A BPS CPU RATIO_H RATIO_D
read -r -a order <<<"$TARGETS"
n=${#order[@]}
for r in $(seq 1 "$ROUNDS"); do
	declare -A ROUND=()
	for i in $(seq 0 $((n - 1))); do
		t=${order[$(((i + r - 1) % n))]}
		for l in $LOADS; do
			[ "$t" != direct ] && t0=$(cpu_ticks "${PID[$t]}")
			bps=$(send "$t" "${LCONNS[$l]}" "$SIZE")
			if [ "$t" != direct ]; then
				t1=$(cpu_ticks "${PID[$t]}")
				CPU[$t/$l]+="$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$SIZE" 'BEGIN { g = s + 0; if (s ~ /GiB$/) g = g; else if (s ~ /MiB$/) g /= 1024; else g /= 1073741824; printf "%.3f", t / hz / g }') "
			fi
			ROUND[$t/$l]=$bps
			BPS[$t/$l]+="$bps "
			echo "round $r $t $l: $(awk -v b="$bps" 'BEGIN { printf "%.0f MB/s", b / 1e6 }')" >&2
		done
	done
	# Ratios within a round cancel the machine's drift between rounds.
	for l in $LOADS; do
		RATIO_H[$l]+="$(awk -v a="${ROUND[wproxy/$l]}" -v b="${ROUND[haproxy/$l]}" 'BEGIN { printf "%.3f", a / b }') "
		RATIO_D[$l]+="$(awk -v a="${ROUND[wproxy/$l]}" -v b="${ROUND[direct/$l]}" 'BEGIN { printf "%.3f", a / b }') "
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
lohi() { tr ' ' '\n' | grep -v '^$' | sort -g | sed -n '1p;$p' | paste -sd- -; }

echo
echo "$SIZE client to backend, single: 1 connection, multi: $CONNS connections; $WORKERS worker thread(s) per proxy, median of $ROUNDS rounds, $(nproc) cores"
printf "%-8s %-7s %10s %14s\n" target load "MB/s" "cpu s/GiB"
for l in $LOADS; do
	for t in $TARGETS; do
		cpu="-"
		[ "$t" != direct ] && cpu=$(echo "${CPU[$t/$l]}" | median)
		printf "%-8s %-7s %10.0f %14s\n" "$t" "$l" "$(echo "${BPS[$t/$l]}" | median | awk '{print $1 / 1e6}')" "$cpu"
	done
done
echo
echo "ratios: the median of the per-round ratios, with the lowest and highest round"
for l in $LOADS; do
	printf "%-7s wproxy/haproxy %.2f (%s)   wproxy/direct %.2f (%s)   cpu/GiB wproxy/haproxy %.2f\n" "$l" \
		"$(echo "${RATIO_H[$l]}" | median)" "$(echo "${RATIO_H[$l]}" | lohi)" \
		"$(echo "${RATIO_D[$l]}" | median)" "$(echo "${RATIO_D[$l]}" | lohi)" \
		"$(awk -v a="$(echo "${CPU[wproxy/$l]}" | median)" -v b="$(echo "${CPU[haproxy/$l]}" | median)" 'BEGIN { print a / b }')"
done
