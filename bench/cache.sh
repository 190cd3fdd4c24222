#!/usr/bin/env bash
# Turnpike response-cache benchmark (issue 5, "Speed"): what a cache hit is worth, against
# plain proxying of the same response and against nginx `proxy_cache` hits on the same
# content, in one run on one machine with the same upstream and load generator; and whether
# the memory cache stays within its byte limit under a stream of unique keys.
#
#   bash bench/cache.sh                                  # from the repo root; about 6 minutes
#   DURATION=2 WARMUP=1 ROUNDS=1 MEM_DURATION=3 bash bench/cache.sh   # a quick smoke run
#   TURNPIKE_BIN=target/release/turnpike bash bench/cache.sh          # skip the cargo build
#
# One run:
#  1. installs what is missing of nginx, wrk, curl (apt-get, as run.sh does) and builds
#     Turnpike (cargo build --release -p turnpike) unless TURNPIKE_BIN is set.
#  2. starts, on 127.0.0.1, each in its own process group (killed on exit, error or Ctrl-C):
#       18380  upstream nginx (UPSTREAM_WORKERS workers): a fixed BODY_BYTES body on every path
#              with `Cache-Control: max-age=3600`; stub_status on /nginx_status (not proxied)
#       18300  Turnpike (server.workers: WORKERS), cache.memory CACHE_MEMORY, two routes to the
#              upstream: /plain (no cache) and /cached (`cache: {}`); /metrics on 18391
#       18301  nginx proxy (WORKERS workers, keep-alive upstream pool): location /plain (no
#              cache) and /cached with proxy_cache in a tmpfs dir (CACHE_DIR, default under
#              /dev/shm, removed at exit): proxy_cache_path ... keys_zone=bench:10m
#              max_size=256m, proxy_cache_valid 200 10m, proxy_cache_lock on, and
#              proxy_cache_key "$request_method$scheme://$host$request_uri": method + scheme +
#              host + path + query, as Turnpike's key.
#     Header work is equal (PEER_HEADERS=same, the default, as in run.sh): nginx adds the
#     X-Forwarded-*, Forwarded, Via and X-Request-Id headers Turnpike adds, in both locations
#     (on a hit only the response-side ones are sent: Via and X-Request-Id, on both proxies),
#     and, since Turnpike always sends RFC 9211 `Cache-Status` on a caching route, nginx's
#     /cached location sends one too (`nginx; hit`, `nginx; fwd=miss`, from
#     $upstream_cache_status). Neither adds X-Cache. Turnpike's hits also carry `Age`
#     (RFC 9111 requires it); nginx sends none. PEER_HEADERS=none: nginx adds nothing.
#  3. checks first: /plain and /cached answer the body on both proxies; a second GET of
#     /cached/item is a hit (Turnpike `Cache-Status: Turnpike; hit`, nginx `nginx; hit`). The
#     headers of one hit of each are saved to logs/hit-headers-*.txt.
#  4. throughput: ROUNDS rounds; each round one wrk run (after a WARMUP-second warm-up) per
#     target, the order rotated every round:
#       tp-proxy     Turnpike /plain/item   (forwarded every time)
#       tp-hit       Turnpike /cached/item  (one URL, so every request after the first hits)
#       nginx-proxy  nginx /plain/item
#       nginx-hit    nginx /cached/item     (proxy_cache hits)
#     For every run it also counts the requests that reached the upstream (stub_status):
#     `upstream/req` must be ~1 for the proxy rows and ~0 for the hit rows, so a "hit" row
#     that was really forwarding shows. Turnpike's own hit counter
#     (turnpike_cache_requests_total{route="cached",result="hit"}) is compared with wrk's count.
#  5. memory: a second Turnpike (18302, /metrics on 18392) with cache.memory MEM_LIMIT takes
#     wrk runs of MEM_DURATION seconds in which each request is for a new URL (a wrk Lua
#     script: <route>/u/r<run>/<thread>/<n>): first run 0 on /plain (no cache: the RSS the
#     proxy itself reaches under this load), then MEM_RUNS runs on /cached, where every
#     request is a miss that is stored (or refused by admission). turnpike_cache_bytes and
#     turnpike_cache_objects are read from /metrics every 0.5 s during the runs (the highest
#     value is reported) and after each run, with the process's RSS (VmRSS) and peak RSS
#     (VmHWM), and its idle RSS before the first request. RSS after the last /cached run
#     minus RSS after run 0 is reported as the cache's share of RSS.
#  6. prints the tables (medians over the rounds, ratios per round and their spread, memory)
#     and writes them to bench/out/cache/results.md. Raw output and logs: bench/out/cache/logs/.
#
# Targets (issue 5): cache hits >= 1.5x the rps of plain proxying the same response; >= 1.0x
# nginx proxy_cache hits; turnpike_cache_bytes <= the configured limit under unique keys.
#
# Options (environment; defaults in brackets): DURATION [10] WARMUP [2] CONNECTIONS [50]
# WRK_THREADS [2] WORKERS [2] UPSTREAM_WORKERS [1] PEER_HEADERS [same] TURNPIKE_BIN
# SKIP_INSTALL [0] TURNPIKE_LOG [warn] STARTUP_TIMEOUT [60] as in run.sh / traffic.sh, and
#   ROUNDS [5]            alternating rounds; medians over them
#   BODY_BYTES [1024]     size of the upstream's body, 16 to 4000 (it is inlined in nginx.conf)
#   CACHE_MEMORY [64MiB]  cache.memory of the throughput Turnpike (Turnpike's default)
#   CACHE_DIR [/dev/shm/turnpike-bench-cache-<pid>]   nginx's proxy_cache_path (tmpfs), removed at exit
#   MEM_LIMIT [16MiB]     cache.memory of the unique-keys Turnpike
#   MEM_DURATION [15]     seconds per unique-keys run
#   MEM_RUNS [2]          unique-keys runs on /cached (RSS after each shows whether it keeps
#                         growing), after one on /plain
#
# Only 127.0.0.1 is used. Files go to bench/out/cache/ (git-ignored). A lock
# (/tmp/turnpike-bench-cache.lock) allows one cache.sh at a time on a machine.
set -euo pipefail
shopt -s inherit_errexit nullglob

# ---------------------------------------------------------------------------------------------
# Settings (environment)
# ---------------------------------------------------------------------------------------------
DURATION=${DURATION:-10}            # seconds per measured run
WARMUP=${WARMUP:-2}                 # seconds of load before each measured run
CONNECTIONS=${CONNECTIONS:-50}      # concurrent client connections (wrk -c)
WRK_THREADS=${WRK_THREADS:-2}       # load generator threads (wrk -t)
WORKERS=${WORKERS:-2}               # nginx worker_processes = Turnpike server.workers
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}  # upstream nginx workers: few, to leave CPU to the proxies
ROUNDS=${ROUNDS:-5}                 # alternating rounds over every target; medians
BODY_BYTES=${BODY_BYTES:-1024}      # the upstream's body, newline included
CACHE_MEMORY=${CACHE_MEMORY:-64MiB} # cache.memory of the throughput Turnpike
CACHE_DIR=${CACHE_DIR:-/dev/shm/turnpike-bench-cache-$$}   # nginx proxy_cache_path
MEM_LIMIT=${MEM_LIMIT:-16MiB}       # cache.memory of the unique-keys Turnpike
MEM_DURATION=${MEM_DURATION:-15}    # seconds per unique-keys run
MEM_RUNS=${MEM_RUNS:-2}             # unique-keys runs
PEER_HEADERS=${PEER_HEADERS:-same}  # same: nginx adds the headers Turnpike adds; none: bare
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}   # seconds a server gets to start listening
SKIP_INSTALL=${SKIP_INSTALL:-0}     # 1: do not install anything (fail if a tool is missing)
# TURNPIKE_BIN: use this binary instead of building target/release/turnpike.

PORT_TP=18300
PORT_NGINX=18301
PORT_TP_MEM=18302
PORT_UPSTREAM=18380
PORT_TP_METRICS=18391
PORT_TP_MEM_METRICS=18392
ALL_PORTS=("$PORT_TP" "$PORT_NGINX" "$PORT_TP_MEM" "$PORT_UPSTREAM" "$PORT_TP_METRICS" "$PORT_TP_MEM_METRICS")

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out/cache
RUN=$OUT/run          # NAME.pid for every process group we started (cleanup kills them all)
LOGS=$OUT/logs        # server logs and raw load-generator output
RES=$OUT/results      # one file per measured value; steps run in subshells and share through it
CONF=$OUT/conf        # server configs and wrk scripts
PATH=$PATH:/usr/sbin:/sbin   # nginx lives in sbin, often not on a user's PATH
CLK_TCK=$(getconf CLK_TCK)
FAILED=()
CACHE_DIR_CREATED=0

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# The body: printable, no character nginx.conf or the shell would interpret. BODY is what
# check_body compares with (curl's output without the final newline the upstream adds).
BODY=$(head -c "$((BODY_BYTES - 1))" < <(yes 'turnpike-cache-bench-0123456789' | tr -d '\n'))

TARGETS=(tp-proxy tp-hit nginx-proxy nginx-hit)

label_of() {
  case $1 in
    tp-proxy) echo "turnpike, plain proxy" ;;
    tp-hit) echo "turnpike, cache hit" ;;
    nginx-proxy) echo "nginx, plain proxy" ;;
    nginx-hit) echo "nginx, proxy_cache hit" ;;
  esac
}

target_of() { # TARGET -> sets URL and PROC (the process group whose CPU is measured)
  case $1 in
    tp-proxy) URL=http://127.0.0.1:$PORT_TP/plain/item PROC=turnpike ;;
    tp-hit) URL=http://127.0.0.1:$PORT_TP/cached/item PROC=turnpike ;;
    nginx-proxy) URL=http://127.0.0.1:$PORT_NGINX/plain/item PROC=nginx ;;
    nginx-hit) URL=http://127.0.0.1:$PORT_NGINX/cached/item PROC=nginx ;;
    *) die "unknown target $1" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
write_configs() {
  # The upstream: the body on every path, cacheable for an hour; stub_status counts what
  # reaches it (the proxies never forward /nginx_status: it is asked directly).
  {
    nginx_common upstream "$UPSTREAM_WORKERS"
    cat <<EOF
http {
$(nginx_http_common upstream)
  server {
    listen 127.0.0.1:$PORT_UPSTREAM backlog=4096;
    location = /nginx_status { stub_status; }
    location / {
      add_header Cache-Control "max-age=3600";
      return 200 "$BODY\n";
    }
  }
}
EOF
  } >"$CONF/upstream.nginx.conf"

  # nginx: add_header in a location replaces every add_header of the levels above, so the
  # gateway headers are repeated in each location rather than set once for the server.
  local cache_status=""
  # shellcheck disable=SC2016  # an nginx variable, not a shell one
  [[ $PEER_HEADERS != same ]] || cache_status='      add_header Cache-Status $cache_status always;'
  {
    nginx_common nginx "$WORKERS"
    cat <<EOF
http {
$(nginx_http_common nginx)
  proxy_cache_path $CACHE_DIR levels=1:2 keys_zone=bench:10m max_size=256m inactive=60m use_temp_path=off;
  # RFC 9211 Cache-Status, as Turnpike sends on every answer of a caching route.
  map \$upstream_cache_status \$cache_status {
    ""        "";
    HIT       "nginx; hit";
    STALE     "nginx; fwd=stale";
    UPDATING  "nginx; hit; detail=updating";
    default   "nginx; fwd=miss";
  }
  upstream backend {
    server 127.0.0.1:$PORT_UPSTREAM;
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX backlog=4096;
    proxy_http_version 1.1;
    location /plain {
      proxy_pass http://backend;
      proxy_set_header Connection "";
$(nginx_gateway_headers)
    }
    location /cached {
      proxy_pass http://backend;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_key "\$request_method\$scheme://\$host\$request_uri";
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
$(nginx_gateway_headers)
$cache_status
    }
  }
}
EOF
  } >"$CONF/nginx.conf"

  write_turnpike_config "$CONF/turnpike.yaml" "$PORT_TP" "$PORT_TP_METRICS" "$CACHE_MEMORY"
  write_turnpike_config "$CONF/turnpike-mem.yaml" "$PORT_TP_MEM" "$PORT_TP_MEM_METRICS" "$MEM_LIMIT"

  # One new URL per request: <prefix>/<thread>/<n>; the prefix (wrk's argument, such as
  # /cached/u/r1) picks the route and keeps the runs apart.
  cat >"$CONF/unique.lua" <<'EOF'
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local prefix, n = "/cached/u/x", 0
function init(args)
  if args[1] then prefix = args[1] end
end
function request()
  n = n + 1
  return wrk.format("GET", prefix .. "/" .. tid .. "/" .. n)
end
EOF
}

write_turnpike_config() { # FILE PORT METRICS_PORT MEMORY
  cat >"$1" <<EOF
listen: 127.0.0.1:$2
server:
  workers: $WORKERS
metrics:
  listen: 127.0.0.1:$3
cache:
  memory: $4
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
routes:
  - {name: plain, paths: ["/plain"], upstream: backend}
  - {name: cached, paths: ["/cached"], upstream: backend, cache: {}}
EOF
}

# ---------------------------------------------------------------------------------------------
# Servers and readings
# ---------------------------------------------------------------------------------------------
start_turnpike() { # NAME CONFIG PORT METRICS_PORT
  "$TURNPIKE_BIN" validate --config "$2" >"$LOGS/validate-$1.log" 2>&1 ||
    { cat "$LOGS/validate-$1.log" >&2; die "turnpike rejects $2"; }
  TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg "$1" "$TURNPIKE_BIN" serve --no-watch --config "$2"
  wait_port "$1" "$3"
  wait_port "$1" "$4"
}

start_servers() {
  say "starting upstream nginx, nginx (proxy_cache in $CACHE_DIR) and Turnpike"
  [[ ! -e $CACHE_DIR ]] || die "$CACHE_DIR exists already; remove it or set CACHE_DIR"
  mkdir -p "$CACHE_DIR"
  # shellcheck disable=SC2034  # read by the EXIT trap
  CACHE_DIR_CREATED=1
  nginx -t -q -p "$OUT/nginx/nginx" -e stderr -c "$CONF/nginx.conf" 2>"$LOGS/nginx-t.log" ||
    { cat "$LOGS/nginx-t.log" >&2; die "nginx rejects $CONF/nginx.conf"; }
  start_bg upstream nginx -p "$OUT/nginx/upstream" -e stderr -c "$CONF/upstream.nginx.conf" -g 'daemon off;'
  start_bg nginx nginx -p "$OUT/nginx/nginx" -e stderr -c "$CONF/nginx.conf" -g 'daemon off;'
  wait_port upstream "$PORT_UPSTREAM"
  wait_port nginx "$PORT_NGINX"
  start_turnpike turnpike "$CONF/turnpike.yaml" "$PORT_TP" "$PORT_TP_METRICS"
}

upstream_requests() { # -> requests the upstream has handled (stub_status; this read included)
  curl -sS --max-time 5 "http://127.0.0.1:$PORT_UPSTREAM/nginx_status" | awk 'NR == 3 {print $3}'
}

metric() { # METRICS_PORT NAME [LABEL=VALUE...] -> the sample's value, summed over the series
  local labels="${*:3}"   # that have every label given (0 when there is none)
  curl -sS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk -v n="$2" -v ls="$labels" 'BEGIN { k = split(ls, want, " ") }
      { name = $1; sub(/\{.*/, "", name); if (name != n) next
        for (i = 1; i <= k; i++) { split(want[i], kv, "="); if (!index($1, kv[1] "=\"" kv[2] "\"")) next }
        v += $2 }
      END { printf "%.0f\n", v + 0 }'
}

hit_counter() { metric "$PORT_TP_METRICS" turnpike_cache_requests_total route=cached result=hit; }

# ---------------------------------------------------------------------------------------------
# Checks: both paths answer the body, and the second request on /cached is a hit
# ---------------------------------------------------------------------------------------------
cache_status_of() { # URL -> the Cache-Status header's value (empty when absent)
  curl -sS --max-time 5 -D - -o /dev/null "$1" | awk -F': ' 'tolower($1) == "cache-status" { sub(/\r$/, "", $2); print $2 }'
}

scenario_check() {
  local t URL PROC first second
  check_body "http://127.0.0.1:$PORT_UPSTREAM/plain/item"
  for t in "${TARGETS[@]}"; do
    target_of "$t"
    check_body "$URL"
  done
  for t in tp-hit nginx-hit; do
    target_of "$t"
    # A URL of its own, so the first request here is certainly a miss.
    first=$(cache_status_of "${URL%/item}/check")
    second=$(cache_status_of "${URL%/item}/check")
    info "$(label_of "$t"): first GET Cache-Status '$first', second '$second'"
    if [[ $PEER_HEADERS == same || $t == tp-hit ]]; then
      [[ $first == *miss* ]] || die "$t: the first GET of ${URL%/item}/check is not a miss: Cache-Status '$first'"
      [[ $second == *"; hit"* ]] || die "$t: the second GET of ${URL%/item}/check is not a hit: Cache-Status '$second' (bug?)"
    fi
    curl -sS --max-time 5 -D "$LOGS/hit-headers-$t.txt" -o /dev/null "$URL"
  done
  info "headers of a Turnpike hit: $(awk -F: 'NR > 1 && NF > 1 {printf "%s%s", s, $1; s = ", "}' "$LOGS/hit-headers-tp-hit.txt")"
  info "headers of an nginx hit:   $(awk -F: 'NR > 1 && NF > 1 {printf "%s%s", s, $1; s = ", "}' "$LOGS/hit-headers-nginx-hit.txt")"
}

# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------
measure() { # TARGET ROUND: warm-up, then one wrk run; CPU per request, upstream share, hits
  local t=$1 r=$2 URL PROC cpu0 cpu1 up0 up1 hit0 hit1 n
  target_of "$t"
  warm_up "$URL"
  up0=$(upstream_requests)
  [[ $t != tp-hit ]] || hit0=$(hit_counter)
  cpu0=$(cpu_ticks "$PROC")
  run_wrk "$t.r$r" "$URL"
  cpu1=$(cpu_ticks "$PROC")
  up1=$(upstream_requests)
  n=$(get "$t.r$r.requests")
  put "$t.r$r.cpu_us" "$(awk -v d="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
  # The stub_status read after the run counts itself: one request less.
  put "$t.r$r.upstream" "$((up1 - up0 - 1))"
  put "$t.r$r.up_share" "$(awk -v u="$((up1 - up0 - 1))" -v n="$n" 'BEGIN { printf "%.2f", u / n }')"
  if [[ $t == tp-hit ]]; then
    hit1=$(hit_counter)
    put "$t.r$r.hits" "$((hit1 - hit0))"
    put "$t.r$r.hit_share" "$(awk -v h="$((hit1 - hit0))" -v n="$n" 'BEGIN { printf "%.4f", h / n }')"
  fi
  info "$t: $((up1 - up0 - 1)) requests reached the upstream of $n served$([[ $t != tp-hit ]] || echo ", Turnpike counted $((hit1 - hit0)) hits")"
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
# Memory under unique keys
# ---------------------------------------------------------------------------------------------
bytes_of() { # 16MiB, 64KiB, 1GiB, 1024 -> bytes
  awk -v s="$1" 'BEGIN { n = s + 0; u = s; sub(/^[0-9.]+/, "", u)
    f = (u == "" || u == "B") ? 1 : (u == "KiB") ? 1024 : (u == "MiB") ? 1048576 : (u == "GiB") ? 1073741824 :
        (u == "KB") ? 1000 : (u == "MB") ? 1e6 : (u == "GB") ? 1e9 : -1
    if (f < 0) { print "n/a"; exit }; printf "%.0f\n", n * f }'
}

write_sampler() { # a loop reading the cache gauges and RSS twice a second, one line each
  cat >"$CONF/sampler.sh" <<'EOF'
#!/usr/bin/env bash
# sampler.sh METRICS_URL PID OUT_FILE: "bytes objects rss_kib" every 0.5 s until killed
while :; do
  m=$(curl -s --max-time 2 "$1")
  b=$(awk '$1 == "turnpike_cache_bytes" { printf "%.0f", $2 }' <<<"$m")
  o=$(awk '$1 == "turnpike_cache_objects" { printf "%.0f", $2 }' <<<"$m")
  r=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$2/status" 2>/dev/null)
  echo "${b:-?} ${o:-?} ${r:-?}" >>"$3"
  sleep 0.5
done
EOF
  chmod +x "$CONF/sampler.sh"
}

scenario_memory() {
  local limit run f url samples max_b pid
  limit=$(bytes_of "$MEM_LIMIT")
  [[ $limit != n/a ]] || die "cannot read MEM_LIMIT=$MEM_LIMIT (use e.g. 16MiB)"
  put mem.limit "$limit"
  write_sampler
  start_turnpike tp-mem "$CONF/turnpike-mem.yaml" "$PORT_TP_MEM" "$PORT_TP_MEM_METRICS"
  pid=$(pid_of tp-mem)
  sleep 1
  put mem.idle_kib "$(mem_kib tp-mem VmRSS)"
  info "unique-keys Turnpike up, cache.memory $MEM_LIMIT ($limit bytes), idle RSS $(kib_to_mib "$(get mem.idle_kib)") MiB"
  check_body "http://127.0.0.1:$PORT_TP_MEM/cached/u/check"
  # Run 0: the same stream of new URLs on /plain (no cache), for the RSS the proxy itself
  # reaches under this load; the cache's share of RSS is what the later runs add to it.
  for run in $(seq 0 "$MEM_RUNS"); do
    local path=/cached/u/r$run
    ((run > 0)) || path=/plain/u/r0
    samples=$LOGS/mem-samples-$run.txt
    : >"$samples"
    stop sampler   # one left over from a run that failed half-way
    start_bg sampler "$CONF/sampler.sh" "http://127.0.0.1:$PORT_TP_MEM_METRICS/metrics" "$pid" "$samples"
    f=$LOGS/wrk-mem-$run.txt
    url=http://127.0.0.1:$PORT_TP_MEM/
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${MEM_DURATION}s" -s "$CONF/unique.lua" "$url" -- "$path" >"$f"
    stop sampler
    put "mem.r$run.rps" "$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")"
    put "mem.r$run.requests" "$(awk '/ requests in / {print $1}' "$f")"
    put "mem.r$run.errors" "$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$f")"
    max_b=$(awk '$1 ~ /^[0-9]+$/ && $1 + 0 > m { m = $1 + 0 } END { print m + 0 }' "$samples")
    put "mem.r$run.max_bytes" "$max_b"
    put "mem.r$run.samples" "$(wc -l <"$samples")"
    put "mem.r$run.bytes" "$(metric "$PORT_TP_MEM_METRICS" turnpike_cache_bytes)"
    put "mem.r$run.objects" "$(metric "$PORT_TP_MEM_METRICS" turnpike_cache_objects)"
    put "mem.r$run.stored" "$(metric "$PORT_TP_MEM_METRICS" turnpike_cache_stored_total route=cached)"
    put "mem.r$run.rss_kib" "$(mem_kib tp-mem VmRSS)"
    put "mem.r$run.hwm_kib" "$(mem_kib tp-mem VmHWM)"
    info "unique keys run $run ($path/...): $(get "mem.r$run.requests") requests ($(get "mem.r$run.rps") req/s, errors $(get "mem.r$run.errors")), stored so far $(get "mem.r$run.stored");" \
      "turnpike_cache_bytes max $max_b (of $(get "mem.r$run.samples") samples), now $(get "mem.r$run.bytes") in $(get "mem.r$run.objects") objects;" \
      "RSS $(kib_to_mib "$(get "mem.r$run.rss_kib")") MiB, peak $(kib_to_mib "$(get "mem.r$run.hwm_kib")") MiB"
    ((max_b > 0 || run == 0)) || warn "turnpike_cache_bytes never rose above 0: nothing was stored (admission refused everything, or a bug)"
  done
  stop tp-mem
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
upstream_cell() { max_of up_share "$1"; } # requests the upstream saw per request served

report() {
  local t r table ratios memtable extra version header limit run max_all=0 v verdict
  for t in "${TARGETS[@]}"; do put "$t.rps" "$(median_of rps "$t")"; done

  table=$(rounds_table "upstream/req" upstream_cell)
  ratios=$(
    echo "ratio (rps)|per round|spread|median of rounds|of the medians|target|verdict"
    ratio_line "turnpike cache hit / turnpike plain proxy" tp-hit tp-proxy '>=' 1.5
    ratio_line "turnpike cache hit / nginx proxy_cache hit" tp-hit nginx-hit '>=' 1.0
    ratio_line "nginx proxy_cache hit / nginx plain proxy" nginx-hit nginx-proxy
    ratio_line "turnpike plain proxy / nginx plain proxy" tp-proxy nginx-proxy
  )

  limit=$(get mem.limit)
  for run in $(seq "$MEM_RUNS"); do   # run 0 is the no-cache baseline
    v=$(get "mem.r$run.max_bytes")
    if [[ $v =~ ^[0-9]+$ ]] && ((v > max_all)); then max_all=$v; fi
  done
  memtable=$(
    echo "unique-keys run|requests|rps|errors|stored (total)|max turnpike_cache_bytes|bytes at end|objects at end|limit|RSS MiB|peak RSS MiB"
    for run in $(seq 0 "$MEM_RUNS"); do
      v=$(get "mem.r$run.max_bytes")
      printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$(if ((run)); then echo "$run: /cached"; else echo "0: /plain (no cache)"; fi)" "$(get "mem.r$run.requests")" "$(get "mem.r$run.rps")" \
        "$(get "mem.r$run.errors")" "$(get "mem.r$run.stored")" "$v" "$(get "mem.r$run.bytes")" \
        "$(get "mem.r$run.objects")" "$limit" "$(mib "mem.r$run.rss_kib")" "$(mib "mem.r$run.hwm_kib")"
    done
  )
  verdict=n/a
  if [[ $limit =~ ^[0-9]+$ && $(get "mem.r1.max_bytes") != n/a ]]; then
    if ((max_all <= limit)); then verdict=met; else verdict=MISSED; fi
    ((max_all > 0)) || verdict="n/a (nothing was stored)"
  fi

  extra=$(
    echo "Memory: turnpike_cache_bytes, highest of the 0.5 s samples over all unique-keys runs: $max_all of $limit bytes ($MEM_LIMIT) → held to the limit: $verdict. Idle RSS before the first request $(mib mem.idle_kib) MiB. Run 0 sends the same stream of new URLs to /plain (no cache) on the same process: its RSS is the proxy's own under this load, and what the /cached runs add to it is the cache's share ($(rss_share) MiB after the last run, for a limit of $MEM_LIMIT). cache.memory counts keys, heads, bodies, URLs and 64 bytes per object; RSS also has the allocator's and the cache library's own overhead."
    if awk -v s="$(rss_share)" -v l="$limit" 'BEGIN { exit !(s ~ /^[0-9.]+$/ && l ~ /^[0-9]+$/ && s * 1048576 > 2 * l) }'; then
      echo "NOTE: the cache's share of RSS ($(rss_share) MiB) is more than twice its limit ($MEM_LIMIT), though turnpike_cache_bytes stays within it: the objects hold memory the byte count does not see (per object: $(awk -v s="$(rss_share)" -v o="$(get "mem.r$MEM_RUNS.objects")" 'BEGIN { if (o > 0) printf "%.1f KiB of RSS", s * 1024 / o; else print "n/a" }') against $(awk -v b="$(get "mem.r$MEM_RUNS.bytes")" -v o="$(get "mem.r$MEM_RUNS.objects")" 'BEGIN { if (o > 0) printf "%.1f KiB counted", b / 1024 / o; else print "n/a" }'))."
    fi
    echo "Hits: Turnpike counted $(sum_of hits tp-hit) hits (turnpike_cache_requests_total{route=\"cached\",result=\"hit\"}) of $(sum_of requests tp-hit) requests served in the measured tp-hit runs. upstream/req = requests that reached the upstream (its stub_status) per request served, the highest round: ~1 for plain proxying, ~0 for hits."
    echo "Body: $BODY_BYTES bytes with Cache-Control: max-age=3600 from the upstream nginx ($UPSTREAM_WORKERS worker). Turnpike cache.memory $CACHE_MEMORY; nginx proxy_cache_path in $CACHE_DIR (tmpfs), key \$request_method\$scheme://\$host\$request_uri, proxy_cache_valid 200 10m, proxy_cache_lock on."
    echo "Header work: PEER_HEADERS=$PEER_HEADERS. $([[ $PEER_HEADERS == same ]] && echo "nginx adds the X-Forwarded-*, Forwarded, Via and X-Request-Id headers Turnpike adds, and on /cached an RFC 9211 Cache-Status (Turnpike always sends one on a caching route). Turnpike's hits also carry Age; nginx sends none. Neither sends X-Cache." || echo "nginx adds no headers (not even Cache-Status); Turnpike does more header work than nginx.")"
    echo "Medians over $ROUNDS rounds of wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up, the order rotated each round. Spread: lowest–highest per-round ratio. CPU µs/req: the target's process group. other CPU %: machine CPU used outside the benchmark, the worst round; above ~10% the numbers are depressed."
    echo "CPU µs/req, hit over plain proxy (medians): Turnpike $(cpu_diff tp-hit tp-proxy), nginx $(cpu_diff nginx-hit nginx-proxy)."
    if ((${#FAILED[@]})); then echo "Failed steps (numbers shown as n/a): $(failed_list)."; fi
  )

  say "results"
  printf '\n%s\n\n%s\n\n%s\n\n%s\n' "$(tty_table <<<"$table")" "$(tty_table <<<"$ratios")" \
    "$(tty_table <<<"$memtable")" "$extra"

  version=$("$TURNPIKE_BIN" --version 2>/dev/null | head -n1) || version=""
  {
    echo "## Cache benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) cores, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); ${version:-turnpike} ($TURNPIKE_BIN)."
    echo "CPU busy before the run: $(get busy)%."
    echo "DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS ROUNDS=$ROUNDS BODY_BYTES=$BODY_BYTES CACHE_MEMORY=$CACHE_MEMORY MEM_LIMIT=$MEM_LIMIT MEM_DURATION=${MEM_DURATION}s MEM_RUNS=$MEM_RUNS PEER_HEADERS=$PEER_HEADERS."
    echo
    md_table <<<"$table"
    echo
    md_table <<<"$ratios"
    echo
    md_table <<<"$memtable"
    echo
    # shellcheck disable=SC2001  # two trailing spaces per line: Markdown line breaks
    sed 's/$/  /' <<<"$extra"
  } >"$OUT/results.md"
  printf '\nMarkdown written to %s\n' "${OUT#"$ROOT"/}/results.md"
  if [[ $verdict == MISSED ]]; then warn "turnpike_cache_bytes went above the configured limit ($max_all > $limit)"; fi
  if ((${#FAILED[@]})); then warn "failed steps: $(failed_list) (logs in ${LOGS#"$ROOT"/})"; fi
  [[ $verdict != MISSED ]]
}

mib() { local v; v=$(get "$1"); if [[ $v =~ ^[0-9]+$ ]]; then kib_to_mib "$v"; else echo n/a; fi; }

rss_share() { # RSS after the last /cached run minus RSS after the /plain run, MiB
  local a b
  a=$(get "mem.r$MEM_RUNS.rss_kib") b=$(get mem.r0.rss_kib)
  if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ ]]; then kib_to_mib "$((a - b))"; else echo n/a; fi
}

# ---------------------------------------------------------------------------------------------
main() {
  if [[ -n ${TURNPIKE_BIN:-} ]]; then TURNPIKE_BIN=$(realpath "$TURNPIKE_BIN"); fi
  cd "$ROOT"
  [[ -n $OUT && -d $ROOT/bench ]] || die "run from the Turnpike repo"
  ((BODY_BYTES >= 16 && BODY_BYTES <= 4000)) || die "BODY_BYTES must be 16 to 4000 (it is inlined in nginx.conf)"
  exec {lock}>"${TMPDIR:-/tmp}/turnpike-bench-cache.lock"
  flock -n "$lock" || die "another bench/cache.sh is running on this machine; wait for it to finish"
  ports_free
  rm -rf "$OUT"
  mkdir -p "$RUN" "$LOGS" "$RES" "$CONF"

  say "1. tools"; install_missing nginx:nginx wrk:wrk curl:curl
  say "2. turnpike"; build_turnpike
  say "3. configs and servers"
  ports_free
  write_configs
  busy_check
  start_servers

  say "4. checks: every target answers the body; the second GET of a cached URL is a hit"
  scenario_check

  say "5. throughput: $ROUNDS rounds of ${TARGETS[*]} (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, ${WARMUP}s warm-up)"
  scenario_rounds
  stop turnpike

  say "6. memory: unique keys against cache.memory $MEM_LIMIT ($MEM_RUNS × ${MEM_DURATION}s)"
  step memory scenario_memory

  local ok=0
  report || ok=1
  ((${#FAILED[@]} == 0 && ok == 0))
}

# lib.sh's EXIT trap stops every server; nginx's cache directory goes after it.
trap 'cleanup; if ((CACHE_DIR_CREATED)); then rm -rf "$CACHE_DIR"; fi' EXIT

main "$@"
