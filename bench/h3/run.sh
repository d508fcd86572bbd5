#!/usr/bin/env bash
# bench/h3/run.sh — HTTP/3 through wproxy and Caddy, side by side in one run,
# under bench/h3/h3load (quic-go's HTTP/3 client, closed loop).
#
# One backend (one nginx process answering a short fixed body over
# HTTP/1.1, as in bench/peers) and in front of it, each terminating QUIC
# with the same self-signed ECDSA P-256 certificate and keeping HTTP/1.1
# connections to the backend alive: wproxy (tls, http3: true; quic-go's
# server) and Caddy (protocols h1 h2 h3; quic-go's server too), both with
# GOMAXPROCS=WORKERS. h3load drives each in turn for DURATION with STREAMS
# requests in flight over CONNS QUIC connections, ROUNDS times, each round
# starting with another proxy; the script prints the median req/s and CPU
# per request (user+system µs of the proxy process divided by the requests
# it served) and the median of the per-round ratios wproxy/Caddy with the
# lowest and highest round. The client is a Go program too and needs about
# as much CPU per request as the proxy: on a 2-core machine the figures are
# bound by both.
#
# Environment: WORKERS (1), ROUNDS (4), DURATION (5s), CONNS (10),
# STREAMS (100), BASE_PORT (19500), PROXIES ("wproxy caddy"), WPROXY_BIN (a
# wproxy binary to use instead of building ./cmd/wproxy). Missing Debian
# packages (caddy nginx openssl) are installed first.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKERS=${WORKERS:-1}
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-10}
STREAMS=${STREAMS:-100}
BASE=${BASE_PORT:-19500}
PROXIES=${PROXIES:-"wproxy caddy"}
export PATH=$PATH:/usr/sbin

need=()
for p in caddy nginx openssl; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
	# Debian starts the packaged services; they are not part of the run.
	for s in nginx caddy; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi

work=$(mktemp -d /tmp/wproxy-h3.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${WPROXY_BIN:-}" ]; then cp "$WPROXY_BIN" "$work/wproxy"; else go build -trimpath -o "$work/wproxy" ./cmd/wproxy; fi
go build -trimpath -o "$work/h3load" ./bench/h3/h3load

B=$BASE
declare -A PORT=([wproxy]=$((BASE + 10)) [caddy]=$((BASE + 11)))

# A self-signed ECDSA P-256 certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

mkdir -p "$work/backend"
cat >"$work/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $work/backend;
  proxy_temp_path $work/backend;
  fastcgi_temp_path $work/backend;
  uwsgi_temp_path $work/backend;
  scgi_temp_path $work/backend;
  server { listen 127.0.0.1:$B; location / { return 200 "hello from backend 1\n"; } }
}
CONF
nginx -p "$work/backend" -c "$work/backend/nginx.conf" >>"$work/backend/error.log" 2>&1 &
pids+=($!)

cat >"$work/wproxy.yaml" <<CONF
listeners:
  - address: 127.0.0.1:${PORT[wproxy]}
    tls: {cert_file: cert.pem, key_file: key.pem}
    http3: true
    routes: [{pool: be}]
pools:
  be:
    backends: [{address: "127.0.0.1:$B"}]
CONF

# Caddy serves HTTP/3 on the UDP port of an https site when h3 is among the
# server's protocols (the default in 2.6). No access log by default.
cat >"$work/Caddyfile" <<CONF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2 h3
  }
}
https://127.0.0.1:${PORT[caddy]} {
  bind 127.0.0.1
  tls $work/cert.pem $work/key.pem
  reverse_proxy 127.0.0.1:$B
}
CONF

declare -A PID
start() {
	case $1 in
	wproxy) GOMAXPROCS=$WORKERS "$work/wproxy" run -config "$work/wproxy.yaml" -log-level warn >>"$work/wproxy.log" 2>&1 & ;;
	caddy) HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work GOMAXPROCS=$WORKERS caddy run --config "$work/Caddyfile" --adapter caddyfile >>"$work/caddy.log" 2>&1 & ;;
	esac
	pids+=($!)
	PID[$1]=$!
}

# load PROXY DURATION [CONNS STREAMS]: h3load's line.
load() { "$work/h3load" -url "https://127.0.0.1:${PORT[$1]}/" -d "$2" -c "${3:-$CONNS}" -n "${4:-$STREAMS}"; }

wait_h3() {
	for _ in $(seq 1 100); do
		load "$1" 100ms 1 1 2>/dev/null | grep -q 'errors=0' && return 0
		sleep 0.1
	done
	echo "$1 does not answer HTTP/3 on UDP port ${PORT[$1]}" >&2
	cat "$work"/*.log >&2
	return 1
}

for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$B/" 2>/dev/null && break; sleep 0.1; done
for p in $PROXIES; do
	start "$p"
	wait_h3 "$p"
done

# cpu_ticks PID: user+system clock ticks of a process and its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# Warm-up: connections to the backend, page cache, the Go heaps.
for p in $PROXIES; do load "$p" 2s >/dev/null; done

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
declare -A RPS CPU RATIO
read -r -a order <<<"$PROXIES"
n=${#order[@]}
for r in $(seq 1 "$ROUNDS"); do
	# Each round starts with another proxy, so that none is always first
	# after the warm-up or always last.
	declare -A ROUND=()
	for i in $(seq 0 $((n - 1))); do
		p=${order[$(((i + r - 1) % n))]}
		t0=$(cpu_ticks "${PID[$p]}")
		out=$(load "$p" "$DURATION")
		t1=$(cpu_ticks "${PID[$p]}")
		ok=$(echo "$out" | field requests)
		errs=$(echo "$out" | field errors)
		[ "$errs" != 0 ] && echo "round $r $p: $errs errors" >&2
		ROUND[$p]=$(echo "$out" | field req_per_sec)
		RPS[$p]+="${ROUND[$p]} "
		CPU[$p]+="$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') "
		echo "round $r $p: ${ROUND[$p]} req/s, $ok requests" >&2
	done
	# Ratios within a round cancel the machine's drift between rounds.
	if [ -n "${ROUND[wproxy]:-}" ] && [ -n "${ROUND[caddy]:-}" ]; then
		RATIO[caddy]+="$(awk -v a="${ROUND[wproxy]}" -v b="${ROUND[caddy]}" 'BEGIN { printf "%.3f", a / b }') "
	fi
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo
echo "HTTP/3, h3load -c $CONNS -n $STREAMS -d $DURATION, GOMAXPROCS=$WORKERS per proxy, median of $ROUNDS rounds, $(nproc) cores"
printf "%-8s %10s %12s\n" proxy "req/s" "cpu µs/req"
for p in $PROXIES; do
	printf "%-8s %10.0f %12.2f\n" "$p" "$(echo "${RPS[$p]}" | median)" "$(echo "${CPU[$p]}" | median)"
done
if [ -n "${RATIO[caddy]:-}" ]; then
	echo
	echo "ratio: the median of the per-round ratios, with the lowest and highest round"
	lo=$(echo "${RATIO[caddy]}" | tr ' ' '\n' | grep -v '^$' | sort -g | head -1)
	hi=$(echo "${RATIO[caddy]}" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
	printf "wproxy/caddy    req/s %.2f (%.2f-%.2f)   cpu/req %.2f\n" "$(echo "${RATIO[caddy]}" | median)" "$lo" "$hi" \
		"$(awk -v a="$(echo "${CPU[wproxy]}" | median)" -v b="$(echo "${CPU[caddy]}" | median)" 'BEGIN { print a / b }')"
fi
