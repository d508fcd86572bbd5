#!/usr/bin/env bash
# bench/h2/run.sh — HTTP/2 over TLS through wproxy, HAProxy and nginx, side
# by side in one run, under h2load.
#
# One backend (one nginx process answering a short fixed body over
# HTTP/1.1, as in bench/peers) and in front of it, each terminating TLS with
# the same self-signed ECDSA P-256 certificate, HTTP/2 by ALPN, and keeping
# HTTP/1.1 connections to the backend alive: wproxy (tls), HAProxy (bind ssl
# alpn h2,http/1.1; http-reuse always) and nginx (listen ssl http2;
# upstream keepalive). Each proxy runs with WORKERS threads (GOMAXPROCS,
# nbthread, worker_processes). h2load drives each in turn for DURATION
# seconds with CONNS connections of STREAMS concurrent streams each, ROUNDS
# times, each round starting with another proxy; the script prints the
# median req/s and CPU per request (user+system µs of the proxy's processes
# divided by the requests it served) and the median of the per-round ratios
# wproxy/HAProxy and wproxy/nginx with the lowest and highest round.
#
# Environment: WORKERS (1), ROUNDS (4), DURATION (5, seconds), CONNS (50),
# STREAMS (10), THREADS (1, h2load's), BASE_PORT (19400),
# PROXIES ("wproxy haproxy nginx"), WPROXY_BIN (a wproxy binary to use
# instead of building ./cmd/wproxy). Missing Debian packages (haproxy nginx
# nghttp2-client openssl) are installed first.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKERS=${WORKERS:-1}
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
THREADS=${THREADS:-1}
BASE=${BASE_PORT:-19400}
PROXIES=${PROXIES:-"wproxy haproxy nginx"}
export PATH=$PATH:/usr/sbin

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
	# Debian starts the packaged services; they are not part of the run.
	for s in nginx haproxy; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi

work=$(mktemp -d /tmp/wproxy-h2.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${WPROXY_BIN:-}" ]; then cp "$WPROXY_BIN" "$work/wproxy"; else go build -trimpath -o "$work/wproxy" ./cmd/wproxy; fi

B=$BASE
declare -A PORT=([wproxy]=$((BASE + 10)) [haproxy]=$((BASE + 11)) [nginx]=$((BASE + 12)))

# A self-signed ECDSA P-256 certificate for 127.0.0.1, and the cert+key
# bundle HAProxy reads.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/bundle.pem"

mkdir -p "$work/backend" "$work/nginx"
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
    routes: [{pool: be}]
pools:
  be:
    backends: [{address: "127.0.0.1:$B"}]
CONF

cat >"$work/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${PORT[haproxy]} ssl crt $work/bundle.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server b1 127.0.0.1:$B
CONF

# nginx 1.22 (Debian 12) takes "listen ... http2"; from 1.25.1 "http2 on".
if nginx -V 2>&1 | grep -q 'nginx/1\.\(2[5-9]\|[3-9][0-9]\)'; then
	h2listen="listen 127.0.0.1:${PORT[nginx]} ssl; http2 on;"
else
	h2listen="listen 127.0.0.1:${PORT[nginx]} ssl http2;"
fi
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  http2_max_concurrent_streams 128;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  upstream be { server 127.0.0.1:$B; keepalive 64; keepalive_requests 10000000; }
  server {
    $h2listen
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF

declare -A PID
start() {
	case $1 in
	wproxy) GOMAXPROCS=$WORKERS "$work/wproxy" run -config "$work/wproxy.yaml" -log-level warn >>"$work/wproxy.log" 2>&1 & ;;
	haproxy) haproxy -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 & ;;
	nginx) nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >>"$work/nginx/error.log" 2>&1 & ;;
	esac
	pids+=($!)
	PID[$1]=$!
}

# wait_url URL [curl options]: until it answers 2xx.
wait_url() {
	local url=$1; shift
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing answers on $url" >&2
	cat "$work"/*.log "$work"/*/error.log >&2 2>/dev/null || true
	return 1
}

wait_url "http://127.0.0.1:$B/"
for p in $PROXIES; do
	start "$p"
	wait_url "https://127.0.0.1:${PORT[$p]}/" -k --http2
	proto=$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:${PORT[$p]}/")
	[ "$proto" = 2 ] || { echo "$p does not answer HTTP/2 (got $proto)" >&2; exit 1; }
done

# cpu_ticks PID: user+system clock ticks of a process and its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
proc_ticks() {
	if [ "$1" = nginx ]; then
		local total=0 c
		for c in $(pgrep -P "${PID[nginx]}") "${PID[nginx]}"; do total=$((total + $(cpu_ticks "$c"))); done
		echo $total
	else
		cpu_ticks "${PID[$1]}"
	fi
}
HZ=$(getconf CLK_TCK)

load() { h2load -D "$1" -c "$CONNS" -m "$STREAMS" -t "$THREADS" "https://127.0.0.1:${PORT[$2]}/"; }

# Warm-up: connections to the backend, TLS session state, page cache.
for p in $PROXIES; do load 2 "$p" >/dev/null; done

declare -A RPS CPU RATIO
read -r -a order <<<"$PROXIES"
n=${#order[@]}
for r in $(seq 1 "$ROUNDS"); do
	# Each round starts with another proxy, so that none is always first
	# after the warm-up or always last.
	declare -A ROUND=()
	for i in $(seq 0 $((n - 1))); do
		p=${order[$(((i + r - 1) % n))]}
		t0=$(proc_ticks "$p")
		out=$(load "$DURATION" "$p")
		t1=$(proc_ticks "$p")
		# requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
		ok=$(echo "$out" | awk '/^requests:/ {print $8}')
		bad=$(echo "$out" | awk '/^requests:/ {print $10 + $12 + $14}')
		non2xx=$(echo "$out" | awk '/^status codes:/ {print $5 + $7 + $9}')
		[ "${bad:-0}" != 0 ] || [ "${non2xx:-0}" != 0 ] && echo "round $r $p: $bad failed/errored/timed out, $non2xx non-2xx" >&2
		ROUND[$p]=$(echo "$out" | awk '/^finished in/ {print $4}')
		RPS[$p]+="${ROUND[$p]} "
		CPU[$p]+="$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') "
		echo "round $r $p: ${ROUND[$p]} req/s, $ok requests" >&2
	done
	# Ratios within a round cancel the machine's drift between rounds.
	for peer in haproxy nginx; do
		if [ -n "${ROUND[wproxy]:-}" ] && [ -n "${ROUND[$peer]:-}" ]; then
			RATIO[$peer]+="$(awk -v a="${ROUND[wproxy]}" -v b="${ROUND[$peer]}" 'BEGIN { printf "%.3f", a / b }') "
		fi
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo
echo "HTTP/2 over TLS, h2load -D $DURATION -c $CONNS -m $STREAMS -t $THREADS, $WORKERS worker thread(s) per proxy, median of $ROUNDS rounds, $(nproc) cores"
printf "%-8s %10s %12s\n" proxy "req/s" "cpu µs/req"
for p in $PROXIES; do
	printf "%-8s %10.0f %12.2f\n" "$p" "$(echo "${RPS[$p]}" | median)" "$(echo "${CPU[$p]}" | median)"
done
echo
echo "ratios: the median of the per-round ratios, with the lowest and highest round"
for peer in haproxy nginx; do
	if [ -n "${RATIO[$peer]:-}" ]; then
		lo=$(echo "${RATIO[$peer]}" | tr ' ' '\n' | grep -v '^$' | sort -g | head -1)
		hi=$(echo "${RATIO[$peer]}" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
		printf "wproxy/%-8s req/s %.2f (%.2f-%.2f)   cpu/req %.2f\n" "$peer" "$(echo "${RATIO[$peer]}" | median)" "$lo" "$hi" \
			"$(awk -v a="$(echo "${CPU[wproxy]}" | median)" -v b="$(echo "${CPU[$peer]}" | median)" 'BEGIN { print a / b }')"
	fi
done
