#!/usr/bin/env bash
# bench/peers/run.sh — wproxy side by side with HAProxy, nginx and Caddy
# (and, with PROXIES including goproxy, the standard library's
# httputil.ReverseProxy as a reference point).
#
# Every proxy balances round robin over the same two backends (one nginx
# process serving a short fixed body on two ports), with the same number of
# worker threads (WORKERS), and is loaded by wrk with the same threads and
# connections. The proxies are measured in turn, ROUNDS times, and the
# median of each figure is printed with the ratios wproxy/HAProxy and
# wproxy/nginx. CPU per request (user+system µs of the proxy process) is
# printed too: on a shared machine it is steadier than req/s.
#
# Environment: WORKERS (1), ROUNDS (3), DURATION (10s), CONNS (50),
# THREADS (1), BASE_PORT (19100), PROXIES ("wproxy haproxy nginx caddy").
# Missing Debian packages (haproxy nginx caddy wrk) are installed first.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKERS=${WORKERS:-1}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
BASE=${BASE_PORT:-19100}
PROXIES=${PROXIES:-"wproxy haproxy nginx caddy"}

need=()
for p in haproxy nginx caddy wrk; do
	command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
	# Debian starts the packaged services; they are not part of the run.
	for s in nginx haproxy caddy; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi
export PATH=$PATH:/usr/sbin

work=$(mktemp -d /tmp/wproxy-peers.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -o "$work/wproxy" ./cmd/wproxy
go build -trimpath -o "$work/goproxy" ./bench/peers/goproxy

B1=$BASE; B2=$((BASE + 1))
declare -A PORT=([wproxy]=$((BASE + 10)) [haproxy]=$((BASE + 11)) [nginx]=$((BASE + 12)) [caddy]=$((BASE + 13)) [goproxy]=$((BASE + 14)))

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
  server { listen 127.0.0.1:$B1; location / { return 200 "hello from backend 1\n"; } }
  server { listen 127.0.0.1:$B2; location / { return 200 "hello from backend 2\n"; } }
}
CONF
nginx -p "$work/backend" -c "$work/backend/nginx.conf" >>"$work/backend/error.log" 2>&1 &
pids+=($!)

cat >"$work/wproxy.yaml" <<CONF
listeners:
  - address: 127.0.0.1:${PORT[wproxy]}
    routes: [{pool: be}]
pools:
  be:
    policy: round_robin
    backends: [{address: "127.0.0.1:$B1"}, {address: "127.0.0.1:$B2"}]
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
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
CONF

cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
  server {
    listen 127.0.0.1:${PORT[nginx]};
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF

cat >"$work/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
:${PORT[caddy]} {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$B1 127.0.0.1:$B2 {
    lb_policy round_robin
  }
}
CONF

declare -A PID
start() {
	case $1 in
	wproxy) GOMAXPROCS=$WORKERS "$work/wproxy" run -config "$work/wproxy.yaml" -log-level warn >>"$work/wproxy.log" 2>&1 & ;;
	haproxy) haproxy -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 & ;;
	nginx) nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >>"$work/nginx/error.log" 2>&1 & ;;
	goproxy) GOMAXPROCS=$WORKERS "$work/goproxy" "127.0.0.1:${PORT[goproxy]}" "127.0.0.1:$B1" "127.0.0.1:$B2" >>"$work/goproxy.log" 2>&1 & ;;
	caddy) HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work GOMAXPROCS=$WORKERS caddy run --config "$work/Caddyfile" --adapter caddyfile >>"$work/caddy.log" 2>&1 & ;;
	esac
	pids+=($!)
	PID[$1]=$!
}

wait_port() {
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing answers on port $1" >&2
	return 1
}

# cpu_ticks PID: user+system clock ticks of a process and its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_port "$B1"
for p in $PROXIES; do
	start "$p"
	wait_port "${PORT[$p]}"
done
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

# Warm up every proxy (connections, JIT-free but caches and pools).
for p in $PROXIES; do wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$p]}/" >/dev/null; done

to_ms() { # wrk latency such as 512.00us, 1.20ms, 2.00s -> ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

declare -A RPS P50 P99 CPU RATIO
read -r -a order <<<"$PROXIES"
n=${#order[@]}
for r in $(seq 1 "$ROUNDS"); do
	# Each round starts with another proxy, so that none is always first
	# after the warm-up or always last.
	declare -A ROUND=()
	for i in $(seq 0 $((n - 1))); do
		p=${order[$(((i + r - 1) % n))]}
		t0=$(proc_ticks "$p")
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:${PORT[$p]}/")
		t1=$(proc_ticks "$p")
		reqs=$(echo "$out" | awk '/requests in/ {print $1}')
		errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
		[ -n "$errs" ] && echo "round $r $p: $errs" >&2
		ROUND[$p]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
		RPS[$p]+="${ROUND[$p]} "
		P50[$p]+="$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')") "
		P99[$p]+="$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')") "
		CPU[$p]+="$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') "
		echo "round $r $p: ${ROUND[$p]} req/s" >&2
	done
	# Ratios within a round cancel the machine's drift between rounds.
	for peer in haproxy nginx caddy goproxy; do
		if [ -n "${ROUND[wproxy]:-}" ] && [ -n "${ROUND[$peer]:-}" ]; then
			RATIO[$peer]+="$(awk -v a="${ROUND[wproxy]}" -v b="${ROUND[$peer]}" 'BEGIN { printf "%.3f", a / b }') "
		fi
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION, $WORKERS worker thread(s) per proxy, median of $ROUNDS rounds, $(nproc) cores"
printf "%-8s %10s %9s %9s %12s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu µs/req"
declare -A MED
for p in $PROXIES; do
	MED[$p]=$(echo "${RPS[$p]}" | median)
	printf "%-8s %10.0f %9.3f %9.3f %12.2f\n" "$p" "${MED[$p]}" "$(echo "${P50[$p]}" | median)" "$(echo "${P99[$p]}" | median)" "$(echo "${CPU[$p]}" | median)"
done
echo
echo "ratios: the median of the per-round ratios, with the lowest and highest round"
for peer in haproxy nginx caddy goproxy; do
	if [ -n "${RATIO[$peer]:-}" ]; then
		lo=$(echo "${RATIO[$peer]}" | tr ' ' '\n' | grep -v '^$' | sort -g | head -1)
		hi=$(echo "${RATIO[$peer]}" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
		printf "wproxy/%-8s req/s %.2f (%.2f-%.2f)   cpu/req %.2f\n" "$peer" "$(echo "${RATIO[$peer]}" | median)" "$lo" "$hi" \
			"$(awk -v a="$(echo "${CPU[wproxy]}" | median)" -v b="$(echo "${CPU[$peer]}" | median)" 'BEGIN { print a / b }')"
	fi
done
