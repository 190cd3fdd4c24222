#!/usr/bin/env bash
# Turnpike traffic-control benchmark: what rate limiting costs, locally and in Redis, against
# nginx `limit_req` and HAProxy stick tables limiting on the same key, in one run on one
# machine with the same upstream and load generator.
#
#   bash bench/traffic.sh                       # from the repo root; about 13 minutes
#   DURATION=2 WARMUP=1 ROUNDS=1 bash bench/traffic.sh   # a quick smoke run
#   TURNPIKE_BIN=target/release/turnpike bash bench/traffic.sh   # skip the cargo build
#
# One run:
#  1. installs what is missing of nginx, haproxy, wrk, curl, python3 (apt-get, as run.sh does)
#     and builds Turnpike (cargo build --release -p turnpike) unless TURNPIKE_BIN is set. Redis
#     is not installed or started: it must answer at REDIS_URL (default redis://127.0.0.1:6379).
#  2. starts, on 127.0.0.1, each in its own process group (killed on exit, error or Ctrl-C):
#       18280  upstream nginx (UPSTREAM_WORKERS workers), answers "hello world\n" on every path
#       18200  Turnpike, traffic.state: memory          (server.workers: WORKERS)
#       18201  Turnpike, traffic.state: REDIS_URL, fail: closed, a redis_prefix unique to the run
#       18207  Turnpike, traffic.state: memory, headers: {ietf: false, legacy: false}
#       18202  nginx proxy (WORKERS workers), limit_req zones
#       18203  HAProxy (nbthread WORKERS) without a limit; 18204 with the throughput stick table;
#              18205 / 18206 with the check stick tables (by source IP / by X-Client)
#     Every proxy keeps upstream connections alive, logs nothing per request, and (with
#     PEER_HEADERS=same, the default) adds the headers Turnpike adds (X-Forwarded-*,
#     Forwarded, Via, X-Request-Id), as in run.sh.
#  3. correctness first: the SAME small limit on every limiter, CHECK_RATE per minute with a
#     burst of CHECK_BURST (Turnpike {limit: CHECK_RATE, per: minute, burst: CHECK_BURST};
#     nginx rate=CHECK_RATEr/m burst=CHECK_BURST-1 nodelay; HAProxy
#     http_req_rate(60s) gt CHECK_BURST, 429 by `http-request deny deny_status 429`).
#     A Python client sends a fixed number of requests over CHECK_CONNECTIONS keep-alive
#     connections and counts the statuses:
#       - by client IP: CHECK_REQUESTS requests (all from 127.0.0.1, one counter);
#       - by header: CHECK_REQUESTS requests for each of CHECK_CLIENTS X-Client values.
#     If the run lasts less than one emission interval (60/CHECK_RATE s), exactly CHECK_BURST
#     requests per key pass on all of them (GCRA and nginx's leaky bucket refill one request
#     per interval, HAProxy's 60 s window not at all). The counts of Turnpike (memory and
#     Redis), nginx and HAProxy must be equal to each other and to that; the report says
#     plainly when they are not, before any speed figure.
#  4. throughput: ROUNDS rounds; each round one wrk run (after a WARMUP-second warm-up) per
#     target, in an order rotated every round:
#       tp-none        Turnpike, route without a limit
#       tp-local       Turnpike, {limit: LIMIT, per: second, by: [ip]} in memory (never reached)
#       tp-local-nohdr the same without the RateLimit-Policy / RateLimit response headers, to
#                      split the cost between counting and headers (informational)
#       tp-redis       the same limit in Redis (the local fast path reserves 0.5 % of the burst
#                      per round trip, so far below the limit Redis is rarely asked)
#       tp-redis-rt    the same rate with burst 399 (< 400: never batched), so every request
#                      is one Redis round trip: what a request near its limit costs (informational)
#       nginx-none / nginx-limit     nginx without / with limit_req zone=$binary_remote_addr
#                      rate=LIMITr/s burst=LIMIT nodelay
#       haproxy-none / haproxy-limit HAProxy without / with track-sc0 src and
#                      deny if sc_http_req_rate(0) gt LIMIT (http_req_rate(1s))
#  5. prints the tables (medians over the rounds, ratios per round and their spread) and writes
#     them to bench/out/traffic/results.md. Raw output and logs: bench/out/traffic/logs/.
#
# Options (environment; defaults in brackets): DURATION [10] WARMUP [2] CONNECTIONS [50]
# WRK_THREADS [2] WORKERS [2] UPSTREAM_WORKERS [1] PEER_HEADERS [same] TURNPIKE_BIN
# SKIP_INSTALL [0] TURNPIKE_LOG [warn] STARTUP_TIMEOUT [60] as in run.sh / auth.sh, and
#   ROUNDS [5]              alternating rounds; medians over them
#   LIMIT [1000000]         requests per second of the throughput limits (never reached)
#   RT_ROW [1]              0 leaves out the tp-redis-rt row
#   NOHDR_ROW [1]           0 leaves out the tp-local-nohdr row (and its Turnpike)
#   REDIS_URL [redis://127.0.0.1:6379]
#   CHECK_RATE [10]         per minute, the small limit of the correctness check
#   CHECK_BURST [500]       its burst (>= 400, so Turnpike's Redis fast path is in play)
#   CHECK_REQUESTS [1000]   requests per key in the check (must exceed CHECK_BURST)
#   CHECK_CONNECTIONS [8]   concurrent connections of the check client
#   CHECK_CLIENTS [4]       distinct X-Client values in the header-keyed check
#
# Only 127.0.0.1 is used. Files go to bench/out/traffic/ (git-ignored); the Redis keys of the
# run (prefix tpbench:<time>-<pid>:) are deleted at the end when redis-cli is available. A lock
# (/tmp/turnpike-bench-traffic.lock) allows one traffic.sh at a time on a machine.
set -euo pipefail
shopt -s inherit_errexit nullglob

# ---------------------------------------------------------------------------------------------
# Settings (environment)
# ---------------------------------------------------------------------------------------------
DURATION=${DURATION:-10}            # seconds per measured run
WARMUP=${WARMUP:-2}                 # seconds of load before each measured run
CONNECTIONS=${CONNECTIONS:-50}      # concurrent client connections (wrk -c)
WRK_THREADS=${WRK_THREADS:-2}       # load generator threads (wrk -t)
WORKERS=${WORKERS:-2}               # nginx worker_processes = HAProxy nbthread = Turnpike workers
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}  # upstream nginx workers: few, to leave CPU to the proxies
ROUNDS=${ROUNDS:-5}                 # alternating rounds over every target; medians
LIMIT=${LIMIT:-1000000}             # per second: the throughput limits, never reached
RT_ROW=${RT_ROW:-1}                 # 1: measure the one-round-trip-per-request Redis row
NOHDR_ROW=${NOHDR_ROW:-1}           # 1: measure the local limit without RateLimit headers too
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
CHECK_RATE=${CHECK_RATE:-10}        # per minute: the correctness check's limit
CHECK_BURST=${CHECK_BURST:-500}     # its burst: what passes of a quick fixed-count run
CHECK_REQUESTS=${CHECK_REQUESTS:-1000}    # requests per key in the check
CHECK_CONNECTIONS=${CHECK_CONNECTIONS:-8} # connections of the check client
CHECK_CLIENTS=${CHECK_CLIENTS:-4}   # X-Client values in the header-keyed check
PEER_HEADERS=${PEER_HEADERS:-same}  # same: nginx/HAProxy add the headers Turnpike adds; none: bare
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}   # seconds a server gets to start listening
SKIP_INSTALL=${SKIP_INSTALL:-0}     # 1: do not install anything (fail if a tool is missing)
# TURNPIKE_BIN: use this binary instead of building target/release/turnpike.

PORT_TP_LOCAL=18200
PORT_TP_REDIS=18201
PORT_NGINX=18202
PORT_HAPROXY_NONE=18203
PORT_HAPROXY_LIMIT=18204
PORT_HAPROXY_CHECK_IP=18205
PORT_HAPROXY_CHECK_HDR=18206
PORT_TP_NOHDR=18207
PORT_UPSTREAM=18280
ALL_PORTS=("$PORT_TP_LOCAL" "$PORT_TP_REDIS" "$PORT_TP_NOHDR" "$PORT_NGINX" "$PORT_HAPROXY_NONE" "$PORT_HAPROXY_LIMIT"
  "$PORT_HAPROXY_CHECK_IP" "$PORT_HAPROXY_CHECK_HDR" "$PORT_UPSTREAM")

BODY="hello world"                  # what the upstream answers on every path
RT_BURST=399                        # Turnpike batches Redis reservations only from a burst of 400

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out/traffic
RUN=$OUT/run          # NAME.pid for every process group we started (cleanup kills them all)
LOGS=$OUT/logs        # server logs and raw load-generator output
RES=$OUT/results      # one file per measured value; steps run in subshells and share through it
CONF=$OUT/conf        # server configs and the check client
PATH=$PATH:/usr/sbin:/sbin   # nginx and haproxy live in sbin, often not on a user's PATH
CLK_TCK=$(getconf CLK_TCK)
FAILED=()
REDIS_PREFIX="tpbench:$(date +%s)-$$:"
REDIS_PID=""          # a local redis-server's pid: its CPU is part of the Redis rows

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TARGETS=(tp-none tp-local)
((NOHDR_ROW == 0)) || TARGETS+=(tp-local-nohdr)
TARGETS+=(tp-redis)
((RT_ROW == 0)) || TARGETS+=(tp-redis-rt)
TARGETS+=(nginx-none nginx-limit haproxy-none haproxy-limit)
CHECKERS=(tp-local tp-redis nginx haproxy)

check_label() {
  case $1 in
    tp-local) echo "turnpike, memory" ;;
    tp-redis) echo "turnpike, Redis" ;;
    nginx) echo "nginx limit_req" ;;
    haproxy) echo "haproxy stick table" ;;
  esac
}

label_of() {
  case $1 in
    tp-none) echo "turnpike, no limit" ;;
    tp-local) echo "turnpike, local limit by ip" ;;
    tp-local-nohdr) echo "turnpike, local limit by ip, no RateLimit headers" ;;
    tp-redis) echo "turnpike, Redis limit by ip (fast path)" ;;
    tp-redis-rt) echo "turnpike, Redis limit by ip, burst $RT_BURST: a round trip per request" ;;
    nginx-none) echo "nginx, no limit" ;;
    nginx-limit) echo "nginx, limit_req by \$binary_remote_addr" ;;
    haproxy-none) echo "haproxy, no limit" ;;
    haproxy-limit) echo "haproxy, stick table http_req_rate by src" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Redis: reachability, CPU (a local redis-server counts as ours, not as "other" load), cleanup
# ---------------------------------------------------------------------------------------------
redis_host_port() { # REDIS_URL -> "host port"
  local rest=${REDIS_URL#*://}
  rest=${rest%%/*}; rest=${rest##*@}
  local host=${rest%:*} port=${rest##*:}
  [[ $rest == *:* ]] || port=6379
  echo "$host $port"
}

redis_cli() { redis-cli -u "$REDIS_URL" "$@"; }

check_redis() {
  local host port
  read -r host port <<<"$(redis_host_port)"
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null || die "Redis does not answer at $REDIS_URL (start it, or set REDIS_URL)"
  if command -v redis-cli >/dev/null; then
    [[ $(redis_cli PING 2>&1) == PONG ]] || die "Redis at $REDIS_URL does not answer PING: $(redis_cli PING 2>&1 | head -c 200)"
    info "Redis at $REDIS_URL: $(redis_cli INFO server 2>/dev/null | awk -F: '/^redis_version/ {print "version " $2}' | tr -d '\r'), key prefix $REDIS_PREFIX"
  else
    info "Redis port $host:$port open (no redis-cli: PING and key cleanup skipped)"
  fi
  if [[ $host == 127.0.0.1 || $host == localhost ]]; then
    # Only read: its CPU ticks. The benchmark never stops or restarts Redis.
    REDIS_PID=$(pgrep -o -x redis-server || true)
  fi
}

redis_ticks() {
  [[ -n $REDIS_PID && -r /proc/$REDIS_PID/stat ]] || { echo 0; return; }
  local s f
  s=$(<"/proc/$REDIS_PID/stat"); s=${s##*) }
  read -r -a f <<<"$s"
  echo $((f[11] + f[12]))
}

# lib.sh's cpu_sample, with a local Redis counted as ours: the Redis rows make it work, and
# that is not load from someone else.
cpu_sample() { # VAR: sets VAR to "total busy ours" in clock ticks
  local f ours=0 self fields
  for f in "$RUN"/*.pid; do ours=$((ours + $(cpu_ticks "$(basename "$f" .pid)"))); done
  ours=$((ours + $(redis_ticks)))
  self=$(<"/proc/$BASHPID/stat"); self=${self##*) }
  read -r -a fields <<<"$self"
  ours=$((ours + fields[11] + fields[12] + fields[13] + fields[14]))
  printf -v "$1" '%s' "$(awk -v o="$ours" 'NR == 1 { t = 0; for (i = 2; i <= 9; i++) t += $i
                                                     print t, t - $5 - $6, o }' /proc/stat)"
}

# SCAN and DEL run inside Redis: the keys hold raw bytes (the client address, header values)
# that would not survive a trip through the shell.
redis_scan() { # delete|count -> how many keys with the run's prefix (deleted)
  local each='n = n + #r[2]'
  [[ $1 != delete ]] || each="for _, k in ipairs(r[2]) do n = n + redis.call('DEL', k) end"
  redis_cli EVAL "local c, n = '0', 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  $each
until c == '0'
return n" 0 "${REDIS_PREFIX}*" 2>/dev/null
}

redis_cleanup() { # deletes this run's keys (they would expire by themselves, the check's in ~1 h)
  command -v redis-cli >/dev/null || return 0
  local n
  n=$(redis_scan delete) || n=0
  [[ $n == 0 || -z $n ]] || info "deleted $n Redis keys with prefix $REDIS_PREFIX"
}

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
write_configs() {
  write_upstream_nginx_conf

  # nginx: one location per limit. limit_req counts in milli-requests per millisecond, so a
  # limit without burst refuses a second request within the same millisecond whatever the
  # rate: the throughput limit gets a burst as large as its rate, as Turnpike's default burst.
  # burst=B-1 nodelay lets B requests through at once, as a GCRA burst of B does.
  {
    nginx_common nginx "$WORKERS"
    cat <<EOF
http {
$(nginx_http_common nginx)
  limit_req_zone \$binary_remote_addr zone=big:10m rate=${LIMIT}r/s;
  limit_req_zone \$binary_remote_addr zone=check_ip:10m rate=${CHECK_RATE}r/m;
  limit_req_zone \$http_x_client zone=check_hdr:10m rate=${CHECK_RATE}r/m;
  limit_req_status 429;
  upstream backend {
    server 127.0.0.1:$PORT_UPSTREAM;
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
$(nginx_gateway_headers)
    location /none { proxy_pass http://backend; }
    location /limited {
      limit_req zone=big burst=$LIMIT nodelay;
      proxy_pass http://backend;
    }
    location /check-ip {
      limit_req zone=check_ip burst=$((CHECK_BURST - 1)) nodelay;
      proxy_pass http://backend;
    }
    location /check-hdr {
      limit_req zone=check_hdr burst=$((CHECK_BURST - 1)) nodelay;
      proxy_pass http://backend;
    }
  }
}
EOF
  } >"$CONF/nginx.conf"

  # HAProxy: one frontend per limit, each with its own stick table. The tracked request is
  # counted when it is tracked, so `gt N` lets exactly N through per window.
  fe() { # NAME PORT [RULES]
    printf '\nfrontend %s\n  bind 127.0.0.1:%s\n' "$1" "$2"
    [[ -z ${3:-} ]] || printf '%s\n' "$3"
    haproxy_gateway_headers
    printf '  default_backend be\n'
  }
  {
    cat <<EOF
global
  nbthread $WORKERS
  maxconn 4000   # 2 fds each must fit under the open-files limit

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
EOF
    fe none "$PORT_HAPROXY_NONE"
    fe limited "$PORT_HAPROXY_LIMIT" "  stick-table type ip size 100k expire 10s store http_req_rate(1s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $LIMIT }"
    fe check_ip "$PORT_HAPROXY_CHECK_IP" "  stick-table type ip size 100k expire 120s store http_req_rate(60s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $CHECK_BURST }"
    fe check_hdr "$PORT_HAPROXY_CHECK_HDR" "  stick-table type string len 64 size 100k expire 120s store http_req_rate(60s)
  http-request track-sc0 req.hdr(X-Client)
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $CHECK_BURST }"
    cat <<EOF

backend be
  server upstream 127.0.0.1:$PORT_UPSTREAM
EOF
  } >"$CONF/haproxy.cfg"

  write_turnpike_config "$CONF/turnpike-local.yaml" "$PORT_TP_LOCAL" memory
  write_turnpike_config "$CONF/turnpike-nohdr.yaml" "$PORT_TP_NOHDR" memory no-headers
  write_turnpike_config "$CONF/turnpike-redis.yaml" "$PORT_TP_REDIS" "$REDIS_URL"
}

# The same routes on both Turnpikes; only traffic.state differs (and fail: closed with Redis,
# so a Redis problem shows up as 503 errors instead of a silent fallback to memory counters).
write_turnpike_config() { # FILE PORT STATE [no-headers]
  local file=$1 port=$2 state=$3 name
  name=$(basename "$file" .yaml)
  {
    cat <<EOF
listen: 127.0.0.1:$port
server:
  workers: $WORKERS
traffic:
  state: "$state"
  quota_file: $OUT/$name-quotas.json
EOF
    [[ $state == memory ]] || cat <<EOF
  redis_prefix: "$REDIS_PREFIX"
  fail: closed
EOF
    [[ ${4:-} != no-headers ]] || echo "  headers: {ietf: false, legacy: false}"
    cat <<EOF
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
routes:
  - {name: none, paths: ["/none"], upstream: backend}
  - name: limited
    paths: ["/limited"]
    upstream: backend
    rate_limit: {limits: [{limit: $LIMIT, per: second, by: [ip]}]}
  - name: roundtrip
    paths: ["/roundtrip"]
    upstream: backend
    rate_limit: {limits: [{limit: $LIMIT, per: second, burst: $RT_BURST, by: [ip]}]}
  - name: check-ip
    paths: ["/check-ip"]
    upstream: backend
    rate_limit: {limits: [{limit: $CHECK_RATE, per: minute, burst: $CHECK_BURST, by: [ip]}]}
  - name: check-hdr
    paths: ["/check-hdr"]
    upstream: backend
    rate_limit: {limits: [{limit: $CHECK_RATE, per: minute, burst: $CHECK_BURST, by: ["header:X-Client"]}]}
EOF
  } >"$file"
}

# The fixed-count client of the correctness check: PER_KEY requests for each key (none: no
# X-Client header), spread over CONNS keep-alive connections, statuses counted per key.
write_check_client() {
  cat >"$CONF/count.py" <<'EOF'
import collections, http.client, sys, threading, time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
per_key, conns = int(sys.argv[4]), int(sys.argv[5])
keys = sys.argv[6].split(",") if len(sys.argv) > 6 and sys.argv[6] else [None]
jobs = [keys[i % len(keys)] for i in range(per_key * len(keys))]
lock = threading.Lock()
counts, errors, retries, nxt = collections.Counter(), [], [0], [0]

def worker():
    c = http.client.HTTPConnection(host, port, timeout=10)
    try:
        while True:
            with lock:
                if nxt[0] >= len(jobs) or errors:
                    return
                key = jobs[nxt[0]]
                nxt[0] += 1
            headers = {"X-Client": key} if key else {}
            for attempt in (1, 2):
                try:
                    c.request("GET", path, headers=headers)
                    r = c.getresponse()
                    r.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # the server closed a kept-alive connection (e.g. after a deny): no answer
                    # was given, so the request is sent again on a new connection
                    c.close()
                    if attempt == 2:
                        raise
                    with lock:
                        retries[0] += 1
            with lock:
                counts[(key or "-", r.status)] += 1
    except Exception as e:  # noqa: BLE001 - reported, and the run fails
        with lock:
            errors.append(repr(e))
    finally:
        c.close()

start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"elapsed {time.monotonic() - start:.3f}")
print(f"retries {retries[0]}")
for (key, status), n in sorted(counts.items()):
    print(f"count {key} {status} {n}")
for e in errors[:5]:
    print(f"error {e}")
sys.exit(1 if errors else 0)
EOF
}

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
wait_body() { # URL [CURL_ARGS...]: check_body, retried for up to 10 s (Redis connecting)
  local i
  for i in {1..100}; do
    if [[ $(curl -s --max-time 5 "${@:2}" "$1" 2>/dev/null) == "$BODY" ]]; then return 0; fi
    sleep 0.1
  done
  check_body "$@"
}

start_servers() {
  local p
  say "starting upstream nginx, nginx, HAProxy and the two Turnpikes"
  haproxy -c -q -f "$CONF/haproxy.cfg" || die "haproxy rejects $CONF/haproxy.cfg"
  "$TURNPIKE_BIN" validate --config "$CONF/turnpike-local.yaml" >"$LOGS/validate.log" 2>&1 ||
    { cat "$LOGS/validate.log" >&2; die "turnpike rejects $CONF/turnpike-local.yaml"; }
  start_bg upstream nginx -p "$OUT/nginx/upstream" -e stderr -c "$CONF/upstream.nginx.conf" -g 'daemon off;'
  start_bg nginx nginx -p "$OUT/nginx/nginx" -e stderr -c "$CONF/nginx.conf" -g 'daemon off;'
  start_bg haproxy haproxy -db -f "$CONF/haproxy.cfg"
  TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg tp-local "$TURNPIKE_BIN" serve --config "$CONF/turnpike-local.yaml"
  TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg tp-redis "$TURNPIKE_BIN" serve --config "$CONF/turnpike-redis.yaml"
  if ((NOHDR_ROW)); then
    TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg tp-nohdr "$TURNPIKE_BIN" serve --config "$CONF/turnpike-nohdr.yaml"
  fi
  wait_port upstream "$PORT_UPSTREAM"
  wait_port nginx "$PORT_NGINX"
  for p in "$PORT_HAPROXY_NONE" "$PORT_HAPROXY_LIMIT" "$PORT_HAPROXY_CHECK_IP" "$PORT_HAPROXY_CHECK_HDR"; do
    wait_port haproxy "$p"
  done
  wait_port tp-local "$PORT_TP_LOCAL"
  wait_port tp-redis "$PORT_TP_REDIS"
  ((NOHDR_ROW == 0)) || wait_port tp-nohdr "$PORT_TP_NOHDR"
  # The throughput paths only (a request to a check path would use up one of its cells).
  check_body "http://127.0.0.1:$PORT_UPSTREAM/limited"
  local t URL PROC hdrs
  for t in "${TARGETS[@]}"; do
    target_of "$t"
    wait_body "$URL"
  done
  # Turnpike's limited routes are limited: the IETF headers are on their answers.
  for t in tp-local tp-redis; do
    target_of "$t"
    hdrs=$(curl -s -D - -o /dev/null --max-time 5 "$URL") || die "GET $URL failed"
    grep -qi '^ratelimit-policy:' <<<"$hdrs" || die "$URL answers without RateLimit-Policy: is the limit applied?"
  done
  info "every target answers '$BODY'; Turnpike's limited routes send RateLimit-Policy"
}

target_of() { # TARGET -> sets URL and PROC (the process group whose CPU is measured)
  case $1 in
    tp-none) URL=http://127.0.0.1:$PORT_TP_LOCAL/none PROC=tp-local ;;
    tp-local) URL=http://127.0.0.1:$PORT_TP_LOCAL/limited PROC=tp-local ;;
    tp-local-nohdr) URL=http://127.0.0.1:$PORT_TP_NOHDR/limited PROC=tp-nohdr ;;
    tp-redis) URL=http://127.0.0.1:$PORT_TP_REDIS/limited PROC=tp-redis ;;
    tp-redis-rt) URL=http://127.0.0.1:$PORT_TP_REDIS/roundtrip PROC=tp-redis ;;
    nginx-none) URL=http://127.0.0.1:$PORT_NGINX/none PROC=nginx ;;
    nginx-limit) URL=http://127.0.0.1:$PORT_NGINX/limited PROC=nginx ;;
    haproxy-none) URL=http://127.0.0.1:$PORT_HAPROXY_NONE/ PROC=haproxy ;;
    haproxy-limit) URL=http://127.0.0.1:$PORT_HAPROXY_LIMIT/ PROC=haproxy ;;
    *) die "unknown target $1" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Correctness: the same small limit everywhere, a fixed number of requests, 200/429 counted
# ---------------------------------------------------------------------------------------------
check_url() { # CHECKER KIND(ip|hdr) -> URL
  local port path=/check-$2
  case $1 in
    tp-local) port=$PORT_TP_LOCAL ;;
    tp-redis) port=$PORT_TP_REDIS ;;
    nginx) port=$PORT_NGINX ;;
    haproxy)
      path=/
      if [[ $2 == ip ]]; then port=$PORT_HAPROXY_CHECK_IP; else port=$PORT_HAPROXY_CHECK_HDR; fi ;;
  esac
  echo "http://127.0.0.1:$port$path"
}

client_keys() { local i out=(); for i in $(seq "$CHECK_CLIENTS"); do out+=("client$i"); done; local IFS=,; echo "${out[*]}"; }

run_check() { # CHECKER KIND: stores check.C.K.{ok,limited,other,elapsed,retries,per_key}
  local c=$1 k=$2 url port path f keys=""
  url=$(check_url "$c" "$k")
  port=${url#http://127.0.0.1:}; path=/${port#*/}; port=${port%%/*}
  [[ $k == ip ]] || keys=$(client_keys)
  f=$LOGS/check-$c-$k.txt
  if ! python3 "$CONF/count.py" 127.0.0.1 "$port" "$path" "$CHECK_REQUESTS" "$CHECK_CONNECTIONS" "$keys" >"$f" 2>&1; then
    cat "$f" >&2
    die "the check client failed against $url"
  fi
  local key=check.$c.$k
  put "$key.elapsed" "$(awk '$1 == "elapsed" {print $2}' "$f")"
  put "$key.retries" "$(awk '$1 == "retries" {print $2}' "$f")"
  put "$key.ok" "$(awk '$1 == "count" && $3 == 200 { s += $4 } END { print s + 0 }' "$f")"
  put "$key.limited" "$(awk '$1 == "count" && $3 == 429 { s += $4 } END { print s + 0 }' "$f")"
  put "$key.other" "$(awk '$1 == "count" && $3 != 200 && $3 != 429 { s += $4; c = c " " $3 "x" $4 } END { print s + 0 c }' "$f")"
  # 200s of each key, in key order ("-" is the no-header key of the by-ip check)
  put "$key.per_key" "$(awk '$1 == "count" && $3 == 200 { n[$2] = $4 } $1 == "count" { seen[$2] = 1 }
    END { for (x in seen) print x, n[x] + 0 }' "$f" | sort | awk '{ printf "%s%s", (NR > 1 ? "/" : ""), $2 }')"
  info "$(check_label "$c") by $k: $(get "$key.ok") × 200, $(get "$key.limited") × 429, other $(get "$key.other")," \
    "per key $(get "$key.per_key"), $(get "$key.elapsed") s"
}

scenario_check() {
  local c k interval
  interval=$(awk -v r="$CHECK_RATE" 'BEGIN { printf "%.1f", 60 / r }')
  for k in ip hdr; do
    for c in "${CHECKERS[@]}"; do
      step "check $c by $k" run_check "$c" "$k"
    done
  done
  # A sample refusal of Turnpike's carries Retry-After and the RateLimit headers.
  curl -s -D "$LOGS/tp-429-headers.txt" -o "$LOGS/tp-429-body.txt" --max-time 5 \
    "$(check_url tp-local ip)" >/dev/null || true
  # Did the Redis Turnpike count in Redis? Its check counters live about CHECK_BURST intervals.
  if command -v redis-cli >/dev/null; then
    put redis.keys "$(redis_scan count)"
    info "Redis keys with the run's prefix after the check: $(get redis.keys)"
  fi
  put check.interval "$interval"
}

# Expected 200s per key: CHECK_BURST when the run is shorter than one emission interval.
check_verdict() { # sets CHECK_VERDICT (equal|DIFFER) and CHECK_NOTES
  local k c ok lim per first_ok first_lim first_per exp_ok exp_lim exp_per slow=()
  CHECK_VERDICT=equal CHECK_NOTES=()
  for k in ip hdr; do
    first_ok="" first_lim="" first_per=""
    if [[ $k == ip ]]; then
      exp_ok=$CHECK_BURST exp_lim=$((CHECK_REQUESTS - CHECK_BURST)) exp_per=$CHECK_BURST
    else
      exp_ok=$((CHECK_BURST * CHECK_CLIENTS)) exp_lim=$(((CHECK_REQUESTS - CHECK_BURST) * CHECK_CLIENTS))
      exp_per=$(printf "$CHECK_BURST/%.0s" $(seq "$CHECK_CLIENTS")); exp_per=${exp_per%/}
    fi
    for c in "${CHECKERS[@]}"; do
      ok=$(get "check.$c.$k.ok") lim=$(get "check.$c.$k.limited") per=$(get "check.$c.$k.per_key")
      if [[ $ok == n/a ]]; then
        CHECK_VERDICT=DIFFER; CHECK_NOTES+=("$(check_label "$c") by $k: no counts (the check failed)"); continue
      fi
      if [[ -z $first_ok ]]; then first_ok=$ok first_lim=$lim first_per=$per; fi
      if [[ $ok != "$first_ok" || $lim != "$first_lim" || $per != "$first_per" ]]; then CHECK_VERDICT=DIFFER; fi
      if [[ $ok != "$exp_ok" || $lim != "$exp_lim" || $per != "$exp_per" || $(get "check.$c.$k.other") != 0 ]]; then
        CHECK_NOTES+=("$(check_label "$c") by $k: $ok × 200 (per key $per), $lim × 429, other $(get "check.$c.$k.other"); expected $exp_ok × 200 (per key $exp_per), $exp_lim × 429")
        CHECK_VERDICT=DIFFER
      fi
      if awk -v e="$(get "check.$c.$k.elapsed")" -v i="$(get check.interval)" 'BEGIN { exit !(e + 0 >= i + 0) }'; then
        slow+=("$(check_label "$c") by $k")
      fi
    done
  done
  if ((${#slow[@]})); then
    local IFS=';'
    CHECK_NOTES+=("took longer than one emission interval ($(get check.interval) s), so GCRA and nginx may rightly have let more through than HAProxy: ${slow[*]}")
  fi
}

# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------
measure() { # TARGET ROUND: warm-up, then one wrk run with the CPU per request of the target
  local t=$1 r=$2 URL PROC cpu0 cpu1 rc0 rc1
  target_of "$t"
  warm_up "$URL"
  cpu0=$(cpu_ticks "$PROC"); rc0=$(redis_ticks)
  run_wrk "$t.r$r" "$URL"
  cpu1=$(cpu_ticks "$PROC"); rc1=$(redis_ticks)
  local n; n=$(get "$t.r$r.requests")
  put "$t.r$r.cpu_us" "$(awk -v d="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
  put "$t.r$r.redis_us" "$(awk -v d="$((rc1 - rc0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
}

scenario_rounds() {
  local r i n=${#TARGETS[@]}
  for r in $(seq "$ROUNDS"); do
    say "round $r of $ROUNDS"
    for i in $(seq 0 $((n - 1))); do
      local t=${TARGETS[$(((i + r - 1) % n))]}
      step "$t round $r" measure "$t" "$r"
    done
  done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
# median, round_vals, median_of, sum_of, max_of, round_ratios, ratio_line, cpu_diff: lib.sh

redis_cell() { median_of redis_us "$1" 1; } # Redis's own CPU per request

report() {
  local t r c k table ratios checks extra version header
  for t in "${TARGETS[@]}"; do put "$t.rps" "$(median_of rps "$t")"; done
  check_verdict

  checks=$(
    echo "limiter|by ip: 200|429|other|s|by X-Client ($CHECK_CLIENTS keys): 200 (per key)|429|other|s"
    for c in "${CHECKERS[@]}"; do
      printf '%s|%s|%s|%s|%s|%s (%s)|%s|%s|%s\n' \
        "$(check_label "$c")" "$(get "check.$c.ip.ok")" "$(get "check.$c.ip.limited")" "$(get "check.$c.ip.other")" "$(get "check.$c.ip.elapsed")" \
        "$(get "check.$c.hdr.ok")" "$(get "check.$c.hdr.per_key")" "$(get "check.$c.hdr.limited")" "$(get "check.$c.hdr.other")" "$(get "check.$c.hdr.elapsed")"
    done
    printf 'expected|%s|%s|0||%s (%s each)|%s|0|\n' "$CHECK_BURST" "$((CHECK_REQUESTS - CHECK_BURST))" \
      "$((CHECK_BURST * CHECK_CLIENTS))" "$CHECK_BURST" "$(((CHECK_REQUESTS - CHECK_BURST) * CHECK_CLIENTS))"
  )

  table=$(rounds_table "Redis CPU µs/req" redis_cell)
  ratios=$(
    echo "ratio (rps)|per round|spread|median of rounds|of the medians|target|verdict"
    ratio_line "local limit / no limit" tp-local tp-none '>=' 0.95
    ((NOHDR_ROW == 0)) || ratio_line "local limit without RateLimit headers / no limit" tp-local-nohdr tp-none
    ratio_line "Redis limit / local limit" tp-redis tp-local '>=' 0.80
    ((RT_ROW == 0)) || ratio_line "Redis, a round trip per request / local limit" tp-redis-rt tp-local
    ratio_line "turnpike local limit / nginx limit_req" tp-local nginx-limit
    ratio_line "turnpike local limit / haproxy stick table" tp-local haproxy-limit
    ratio_line "turnpike Redis limit / nginx limit_req" tp-redis nginx-limit
    ratio_line "nginx limit_req / nginx no limit" nginx-limit nginx-none
    ratio_line "haproxy stick table / haproxy no limit" haproxy-limit haproxy-none
    ratio_line "turnpike no limit / nginx no limit" tp-none nginx-none
  )
  extra=$(
    echo "Correctness: the same limit everywhere, $CHECK_RATE per minute with a burst of $CHECK_BURST (Turnpike {limit: $CHECK_RATE, per: minute, burst: $CHECK_BURST}; nginx rate=${CHECK_RATE}r/m burst=$((CHECK_BURST - 1)) nodelay; HAProxy http_req_rate(60s) gt $CHECK_BURST), $CHECK_REQUESTS requests per key over $CHECK_CONNECTIONS keep-alive connections; a run shorter than the emission interval ($(get check.interval) s) must let exactly $CHECK_BURST per key through."
    if [[ $CHECK_VERDICT == equal ]]; then
      echo "200/429 counts: EQUAL on all four limiters and as expected, so the speeds below compare limiters that do the same thing."
    else
      echo "200/429 counts: DIFFER. The limiters do not do the same thing; read the speed comparison with that in mind."
    fi
    for n in "${CHECK_NOTES[@]}"; do echo "- $n"; done
    [[ $(get redis.keys) == n/a ]] || echo "Redis keys with the run's prefix after the check: $(get redis.keys) (the Redis Turnpike counted in Redis; it runs with fail: closed, so it never falls back to memory)."
    echo "Throughput limits: $LIMIT per second by client IP everywhere (Turnpike burst $LIMIT, its default; nginx burst=$LIMIT nodelay; HAProxy http_req_rate(1s) gt $LIMIT): never reached, so every answer is a 200 (errors counts non-2xx and socket errors)."
    echo "Medians over $ROUNDS rounds of wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up, the order rotated each round. Spread: lowest–highest per-round ratio (the two runs of a ratio are seconds apart). CPU µs/req: the target's process group (for Redis rows, Redis's own CPU in the next column). other CPU %: machine CPU used outside the benchmark (Redis counted as the benchmark's), the worst round."
    echo "CPU µs/req over the same server without a limit (medians; less sensitive to other load than rps): turnpike local limit $(cpu_diff tp-local tp-none)$( ((NOHDR_ROW == 0)) || echo ", without RateLimit headers $(cpu_diff tp-local-nohdr tp-none)"), Redis limit $(cpu_diff tp-redis tp-none) (+ Redis $(median_of redis_us tp-redis 1))$( ((RT_ROW == 0)) || echo ", Redis round trip per request $(cpu_diff tp-redis-rt tp-none) (+ Redis $(median_of redis_us tp-redis-rt 1))"); nginx limit_req $(cpu_diff nginx-limit nginx-none); HAProxy stick table $(cpu_diff haproxy-limit haproxy-none)."
    echo "Turnpike's limited routes add RateLimit-Policy and RateLimit headers to every answer (the default); nginx and HAProxy add none."
    if ((${#FAILED[@]})); then echo "Failed steps (numbers shown as n/a): $(failed_list)."; fi
  )

  say "results"
  printf '\n%s\n\n%s\n\n%s\n\n%s\n' "$(tty_table <<<"$checks")" "$(tty_table <<<"$table")" \
    "$(tty_table <<<"$ratios")" "$extra"

  version=$("$TURNPIKE_BIN" --version 2>/dev/null | head -n1) || version=""
  {
    echo "## Traffic-control benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) cores, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'); Redis $(redis_cli INFO server 2>/dev/null | awk -F: '/^redis_version/ {print $2}' | tr -d '\r'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); ${version:-turnpike} ($TURNPIKE_BIN)."
    echo "CPU busy before the run: $(get busy)%."
    echo "DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS ROUNDS=$ROUNDS LIMIT=$LIMIT CHECK_RATE=$CHECK_RATE CHECK_BURST=$CHECK_BURST CHECK_REQUESTS=$CHECK_REQUESTS CHECK_CONNECTIONS=$CHECK_CONNECTIONS CHECK_CLIENTS=$CHECK_CLIENTS PEER_HEADERS=$PEER_HEADERS."
    echo
    md_table <<<"$checks"
    echo
    md_table <<<"$table"
    echo
    md_table <<<"$ratios"
    echo
    # shellcheck disable=SC2001  # two trailing spaces per line: Markdown line breaks
    sed 's/$/  /' <<<"$extra"
  } >"$OUT/results.md"
  printf '\nMarkdown written to %s\n' "${OUT#"$ROOT"/}/results.md"
  if [[ $CHECK_VERDICT != equal ]]; then warn "the 200/429 counts DIFFER between the limiters (see above)"; fi
  if ((${#FAILED[@]})); then warn "failed steps: $(failed_list) (logs in ${LOGS#"$ROOT"/})"; fi
}

# ---------------------------------------------------------------------------------------------
main() {
  if [[ -n ${TURNPIKE_BIN:-} ]]; then TURNPIKE_BIN=$(realpath "$TURNPIKE_BIN"); fi
  cd "$ROOT"
  [[ -n $OUT && -d $ROOT/bench ]] || die "run from the Turnpike repo"
  ((CHECK_REQUESTS > CHECK_BURST)) || die "CHECK_REQUESTS ($CHECK_REQUESTS) must exceed CHECK_BURST ($CHECK_BURST)"
  ((CHECK_BURST >= 2)) || die "CHECK_BURST must be at least 2 (nginx gets burst=CHECK_BURST-1)"
  exec {lock}>"${TMPDIR:-/tmp}/turnpike-bench-traffic.lock"
  flock -n "$lock" || die "another bench/traffic.sh is running on this machine; wait for it to finish"
  ports_free
  rm -rf "$OUT"
  mkdir -p "$RUN" "$LOGS" "$RES" "$CONF"

  say "1. tools"; install_missing nginx:nginx haproxy:haproxy wrk:wrk curl:curl python3:python3
  say "2. turnpike"; build_turnpike
  say "3. Redis and configs"
  ports_free
  check_redis
  write_configs
  write_check_client

  say "4. servers"
  busy_check
  start_servers

  say "5. correctness: $CHECK_REQUESTS requests per key against $CHECK_RATE/min, burst $CHECK_BURST, by ip and by X-Client"
  scenario_check

  say "6. throughput: $ROUNDS rounds of ${TARGETS[*]} (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, ${WARMUP}s warm-up)"
  scenario_rounds

  report
  ((${#FAILED[@]} == 0)) && [[ $CHECK_VERDICT == equal ]]
}

# lib.sh's EXIT trap stops every server; the run's Redis keys go first.
trap 'redis_cleanup || true; cleanup' EXIT

main "$@"
