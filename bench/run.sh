#!/usr/bin/env bash
# Turnpike benchmark: Turnpike against nginx and HAProxy (and the upstream alone), in one run,
# on this machine, with the same upstream, load generator and worker counts.
#
#   bash bench/run.sh                 # from the repo root; see bench/README.md
#
# Everything it starts runs from private config files under bench/out/ (git-ignored) and is
# killed when the script exits, on success, on error and on Ctrl-C. Only 127.0.0.1 is used.
set -euo pipefail
shopt -s inherit_errexit nullglob

# ---------------------------------------------------------------------------------------------
# Settings (environment)
# ---------------------------------------------------------------------------------------------
DURATION=${DURATION:-10}            # seconds per measured run
WARMUP=${WARMUP:-2}                 # seconds of load before each measured run
CONNECTIONS=${CONNECTIONS:-50}      # concurrent client connections (wrk -c, h2load -c)
WRK_THREADS=${WRK_THREADS:-2}       # load generator threads (wrk -t, h2load -t)
WORKERS=${WORKERS:-2}               # nginx worker_processes = HAProxy nbthread = Turnpike workers
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}  # upstream nginx workers: few, to leave CPU to the proxies
FIXED_RPS=${FIXED_RPS:-}            # total rate of the fixed-rate run; default: half nginx's rps
H2_STREAMS=${H2_STREAMS:-10}        # concurrent streams per connection in the h2c run
ROUTES=${ROUTES:-10000}             # routes in the many-routes scenario
ROUTES_ROUNDS=${ROUTES_ROUNDS:-3}   # alternating 1-route / many-routes runs, averaged
SKIP_STREAMING=${SKIP_STREAMING:-0} # 1 skips the 1 GiB upload/download
PEER_HEADERS=${PEER_HEADERS:-same}  # same: nginx/HAProxy add the headers Turnpike adds; none: bare
STREAM_MIB=${STREAM_MIB:-1024}      # size of the streamed upload and download
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}  # seconds a server gets to start listening
SKIP_INSTALL=${SKIP_INSTALL:-0}     # 1: do not apt-get anything (fail if a tool is missing)
# TURNPIKE_BIN: use this binary instead of building target/release/turnpike.

# Ports, all on 127.0.0.1.
PORT_TURNPIKE=18000
PORT_NGINX=18001
PORT_HAPROXY=18002
PORT_NGINX_H2=18011      # nginx 1.22 speaks h2c prior knowledge only on a port of its own
PORT_HAPROXY_H2=18012
PORT_UPSTREAM=18080
PORT_UPSTREAM_H2=18081
PORT_SINK=18090
ALL_PORTS=("$PORT_TURNPIKE" "$PORT_NGINX" "$PORT_HAPROXY" "$PORT_NGINX_H2" "$PORT_HAPROXY_H2"
           "$PORT_UPSTREAM" "$PORT_UPSTREAM_H2" "$PORT_SINK")

TARGETS=(direct nginx haproxy turnpike)   # rows of the table, in this order
BODY="hello world"                         # what the upstream answers on /

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/run          # NAME.pid for every process group we started (cleanup kills them all)
LOGS=$OUT/logs        # server logs and raw load-generator output
RES=$OUT/results      # one file per measured value; steps run in subshells and share through it
CONF=$OUT/conf
PATH=$PATH:/usr/sbin:/sbin   # nginx and haproxy live in sbin, often not on a user's PATH
CLK_TCK=$(getconf CLK_TCK)
FAILED=()

# Generic helpers shared with bench/auth.sh: messages, results, process groups and the exit
# trap, port and CPU checks, /proc readings, tool install, build, nginx config lines, wrk runs,
# steps and report tables.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

install_tools() {
  install_missing nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client curl:curl python3:python3
}

# ---------------------------------------------------------------------------------------------
# Configs for every server
# ---------------------------------------------------------------------------------------------

write_configs() {
  mkdir -p "$CONF" "$OUT/www"
  # The upstream: one small fixed answer on /, h2c on a second port, and a sparse file for the
  # streaming download (a 1 GiB hole costs no disk).
  truncate -s "${STREAM_MIB}M" "$OUT/www/big.bin"
  {
    nginx_common upstream "$UPSTREAM_WORKERS"
    cat <<EOF
http {
$(nginx_http_common upstream)
  sendfile on;
  server {
    listen 127.0.0.1:$PORT_UPSTREAM backlog=4096;
    listen 127.0.0.1:$PORT_UPSTREAM_H2 http2 backlog=4096;
    root $OUT/www;
    location = /big.bin { }
    location / { return 200 "$BODY\n"; }
  }
}
EOF
  } >"$CONF/upstream.nginx.conf"

  # nginx as the reverse proxy, tuned as one would in production: upstream keep-alive pool,
  # HTTP/1.1 to the upstream, no logging, same worker count as Turnpike.
  {
    nginx_common nginx "$WORKERS"
    cat <<EOF
http {
$(nginx_http_common nginx)
  upstream backend {
    server 127.0.0.1:$PORT_UPSTREAM;
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX backlog=4096;
    listen 127.0.0.1:$PORT_NGINX_H2 http2 backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
$(nginx_gateway_headers)
    }
  }
}
EOF
  } >"$CONF/nginx.conf"

  # HAProxy: keep-alive on both sides (the 2.x default) and server connections shared between
  # client connections (http-reuse always, what nginx's keepalive pool does); no log lines.
  cat >"$CONF/haproxy.cfg" <<EOF
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

frontend fe
  bind 127.0.0.1:$PORT_HAPROXY
  bind 127.0.0.1:$PORT_HAPROXY_H2 proto h2
$(haproxy_gateway_headers)
  default_backend be

backend be
  server upstream 127.0.0.1:$PORT_UPSTREAM
EOF

  write_turnpike_config "$CONF/turnpike.yaml" 0
  write_turnpike_config "$CONF/turnpike-routes.yaml" "$ROUTES"
  write_turnpike_streaming_config "$CONF/turnpike-streaming.yaml"
}

write_turnpike_config() { # FILE EXTRA_ROUTES
  local file=$1 n=$2
  {
    cat <<EOF
listen: 127.0.0.1:$PORT_TURNPIKE
server:
  workers: $WORKERS
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
routes:
EOF
    # Distinct prefixes before the catch-all, so a router that scans in order pays for all of them.
    if ((n > 0)); then
      awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++)
        printf "  - name: svc%d\n    paths: [\"/svc%d/\"]\n    upstream: backend\n", i, i }'
    fi
    cat <<EOF
  - name: everything
    paths: ["/"]
    upstream: backend
EOF
  } >"$file"
}

write_turnpike_streaming_config() { # FILE: body limit above the upload size; /upload to the sink
  cat >"$1" <<EOF
listen: 127.0.0.1:$PORT_TURNPIKE
server:
  workers: $WORKERS
  max_body_bytes: $((STREAM_MIB * 2))MiB
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
  - name: sink
    targets:
      - url: http://127.0.0.1:$PORT_SINK
routes:
  - name: upload
    paths: ["/upload"]
    upstream: sink
  - name: everything
    paths: ["/"]
    upstream: backend
EOF
}

# ---------------------------------------------------------------------------------------------
# Starting servers
# ---------------------------------------------------------------------------------------------
start_backends() {
  say "starting upstream nginx ($UPSTREAM_WORKERS worker) and upload sink"
  start_bg upstream nginx -p "$OUT/nginx/upstream" -e stderr -c "$CONF/upstream.nginx.conf" -g 'daemon off;'
  start_bg sink python3 "$ROOT/bench/sink.py" "$PORT_SINK"
  wait_port upstream "$PORT_UPSTREAM"
  wait_port sink "$PORT_SINK"
  check_body "http://127.0.0.1:$PORT_UPSTREAM/"
}

start_nginx() {
  say "starting nginx proxy ($WORKERS workers) on $PORT_NGINX"
  start_bg nginx nginx -p "$OUT/nginx/nginx" -e stderr -c "$CONF/nginx.conf" -g 'daemon off;'
  wait_port nginx "$PORT_NGINX"
  check_body "http://127.0.0.1:$PORT_NGINX/"
}

start_haproxy() {
  say "starting HAProxy ($WORKERS threads) on $PORT_HAPROXY"
  haproxy -c -q -f "$CONF/haproxy.cfg" || die "haproxy rejects $CONF/haproxy.cfg"
  start_bg haproxy haproxy -db -f "$CONF/haproxy.cfg"
  wait_port haproxy "$PORT_HAPROXY"
  check_body "http://127.0.0.1:$PORT_HAPROXY/"
}

start_turnpike() { # CONFIG_FILE: (re)starts Turnpike; records startup time and idle RSS
  local cfg=$1 t0 t1
  stop turnpike
  say "starting Turnpike ($WORKERS workers) on $PORT_TURNPIKE with ${cfg#"$ROOT"/}"
  t0=$(date +%s%N)
  # Turnpike logs at warn (its default is info), like the other servers without access logs.
  TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg turnpike "$TURNPIKE_BIN" serve --config "$cfg"
  wait_port turnpike "$PORT_TURNPIKE"
  t1=$(date +%s%N)
  sleep 1   # let lazily started threads settle before reading idle memory
  TURNPIKE_STARTUP_MS=$(((t1 - t0) / 1000000))
  TURNPIKE_IDLE_KIB=$(mem_kib turnpike VmRSS)
}

# ---------------------------------------------------------------------------------------------
# Load generators and their output
# ---------------------------------------------------------------------------------------------
port_of() {
  case $1 in
    direct) echo "$PORT_UPSTREAM" ;; nginx) echo "$PORT_NGINX" ;;
    haproxy) echo "$PORT_HAPROXY" ;; turnpike) echo "$PORT_TURNPIKE" ;;
  esac
}
h2_port_of() {
  case $1 in
    direct) echo "$PORT_UPSTREAM_H2" ;; nginx) echo "$PORT_NGINX_H2" ;;
    haproxy) echo "$PORT_HAPROXY_H2" ;; turnpike) echo "$PORT_TURNPIKE" ;;
  esac
}
proc_of() { # the process group whose CPU and memory a row reports
  case $1 in direct) echo upstream ;; *) echo "$1" ;; esac
}

# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------

# Closed-loop maximum throughput with wrk, plus the proxy's CPU per request and peak memory.
scenario_throughput() { # TARGET
  local t=$1 proc cpu0 cpu1 url
  proc=$(proc_of "$t")
  url="http://127.0.0.1:$(port_of "$t")/"
  check_body "$url"
  warm_up "$url"
  # CPU the proxy's processes (all workers and threads) used during the measured run only.
  cpu0=$(cpu_ticks "$proc")
  run_wrk "$t" "$url"
  cpu1=$(cpu_ticks "$proc")
  put "$t.cpu_us" "$(awk -v d="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v n="$(get "$t.requests")" \
    'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
  put "$t.rss_mib" "$(kib_to_mib "$(mem_kib "$proc" VmHWM)")"
  info "$t: CPU $(get "$t.cpu_us") µs/request, peak RSS $(get "$t.rss_mib") MiB"
}

# Open-loop latency: every target gets the same fixed request rate (half of what nginx managed),
# so p99 compares latency under equal load instead of at each one's own saturation point.
scenario_fixed_rate() { # TARGET
  local t=$1 url f log p50 p99 before
  url="http://127.0.0.1:$(port_of "$t")/"
  f=$LOGS/h2load-fixed-$t.txt log=$LOGS/h2load-fixed-$t.log
  cpu_sample before
  h2load --h1 -c"$CONNECTIONS" -t"$WRK_THREADS" --rps="$(get fixed.per_client)" \
    --warm-up-time="${WARMUP}s" -D "${DURATION}s" --log-file="$log" "$url" >"$f" 2>&1 ||
    { tail -n 20 "$f" >&2; die "h2load failed for $t"; }
  other_cpu_end "fixed.$t" "$before"
  read_h2load "fixed.$t" "$f"
  # Percentiles from the per-request log (h2load itself prints only min/mean/max).
  read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{ v[NR] = $1 }
    END { if (NR == 0) { print "n/a n/a"; exit }
          i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
          i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
          printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }')
  put "fixed.$t.p50" "$p50"; put "fixed.$t.p99" "$p99"
  info "$t @ $(get fixed.rate) req/s: achieved $(get "fixed.$t.rps") req/s," \
    "p50 $p50 ms, p99 $p99 ms, failed $(get "fixed.$t.errors")"
  if (($(get "fixed.$t.rps") * 100 < $(get fixed.rate) * 98)); then
    warn "$t fell behind the fixed rate: it is overloaded there, and its latency is understated"
  fi
}

set_fixed_rate() { # FIXED_RPS, or half of nginx's measured maximum
  local total per_client
  total=${FIXED_RPS:-$(get nginx.rps)}
  [[ $total != n/a ]] || return 1
  [[ -n $FIXED_RPS ]] || total=$((total / 2))
  # h2load's --rps is per client connection, so the total is rounded to a multiple of it.
  per_client=$(( (total + CONNECTIONS / 2) / CONNECTIONS ))
  ((per_client > 0)) || per_client=1
  put fixed.per_client "$per_client"
  put fixed.rate "$((per_client * CONNECTIONS))"
}

read_h2load() { # KEY FILE -> KEY.rps (achieved), KEY.errors (failed, errored, timed out, non-2xx)
  local key=$1 f=$2 rps ok errors
  # finished in 10.00s, 25000.00 req/s, 3.05MB/s
  # requests: 250000 total, 250000 started, 250000 done, 250000 succeeded, 0 failed, 0 errored, 0 timeout
  # status codes: 250000 2xx, 0 3xx, 0 4xx, 0 5xx
  rps=$(awk '/^finished in/ {gsub(/,/, ""); printf "%.0f", $4}' "$f")
  ok=$(awk '/^status codes:/ {print $3}' "$f")
  errors=$(awk '/^requests:/ {gsub(/,/, ""); n += $10 + $12 + $14}
                /^status codes:/ {gsub(/,/, ""); n += $5 + $7 + $9} END {print n + 0}' "$f")
  [[ -n $rps && -n $ok ]] || die "cannot read h2load output $f"
  ((ok > 0)) || die "no 2xx answers in $f"
  put "$key.rps" "$rps"
  put "$key.errors" "$errors"
}

# HTTP/2 over cleartext (prior knowledge) from the client; every proxy still speaks HTTP/1.1 to
# the upstream, and "direct" is nginx's own h2c.
scenario_h2c() { # TARGET
  local t=$1 url f before
  url="http://127.0.0.1:$(h2_port_of "$t")/"
  f=$LOGS/h2load-h2c-$t.txt
  if ! h2load -n1 -c1 "$url" 2>&1 | grep -q '^status codes: 1 2xx'; then
    die "$t does not answer h2c prior knowledge on $url; h2c skipped for it"
  fi
  cpu_sample before
  h2load -c"$CONNECTIONS" -t"$WRK_THREADS" -m"$H2_STREAMS" \
    --warm-up-time="${WARMUP}s" -D "${DURATION}s" "$url" >"$f" 2>&1 ||
    { tail -n 20 "$f" >&2; die "h2load failed for $t"; }
  other_cpu_end "h2c.$t" "$before"
  read_h2load "h2c.$t" "$f"
  info "$t h2c: $(get "h2c.$t.rps") req/s, errors $(get "h2c.$t.errors")"
}

# Idle memory of a freshly started Turnpike with the minimal config.
scenario_start_turnpike() {
  start_turnpike "$CONF/turnpike.yaml"
  put turnpike.idle_mib "$(kib_to_mib "$TURNPIKE_IDLE_KIB")"
  put turnpike.startup_ms "$TURNPIKE_STARTUP_MS"
  info "turnpike up in ${TURNPIKE_STARTUP_MS} ms, idle RSS $(get turnpike.idle_mib) MiB"
  check_body "http://127.0.0.1:$PORT_TURNPIKE/"
}

# The same load with $ROUTES prefix routes in the table: routing must not slow down with size.
# Requests go to the last-defined prefix route, the worst case for a router that scans in order.
# The two configurations are measured alternately, ROUTES_ROUNDS times each, and averaged: on
# 2 shared cores, runs minutes apart can differ by more than the 5% the target allows.
scenario_routes() {
  local url="http://127.0.0.1:$PORT_TURNPIKE/svc$((ROUTES - 1))/bench"
  local round sum1=0 sum10k=0
  for round in $(seq "$ROUTES_ROUNDS"); do
    start_turnpike "$CONF/turnpike.yaml"
    check_body "$url"
    warm_up "$url"
    run_wrk "routes1.r$round" "$url"
    sum1=$((sum1 + $(get "routes1.r$round.rps" | cut -d. -f1)))
    start_turnpike "$CONF/turnpike-routes.yaml"
    put routes.startup_ms "$TURNPIKE_STARTUP_MS"
    put routes.idle_mib "$(kib_to_mib "$TURNPIKE_IDLE_KIB")"
    info "turnpike with $ROUTES routes up in ${TURNPIKE_STARTUP_MS} ms," \
      "idle RSS $(get routes.idle_mib) MiB"
    check_body "$url"
    warm_up "$url"
    run_wrk "routes.r$round" "$url"
    sum10k=$((sum10k + $(get "routes.r$round.rps" | cut -d. -f1)))
  done
  stop turnpike
  local key
  for key in p99 errors other; do
    put "routes1.$key" "$(get "routes1.r$ROUTES_ROUNDS.$key")"
    put "routes.$key" "$(get "routes.r$ROUTES_ROUNDS.$key")"
  done
  put routes1.rps "$((sum1 / ROUTES_ROUNDS))"
  put routes.rps "$((sum10k / ROUTES_ROUNDS))"
}

# 1 GiB up and 1 GiB down through Turnpike: bodies must stream, so memory stays flat.
scenario_streaming() {
  local bytes=$((STREAM_MIB * 1024 * 1024)) out
  start_turnpike "$CONF/turnpike-streaming.yaml"
  check_body "http://127.0.0.1:$PORT_TURNPIKE/"

  # Upload: the sink counts what arrives, so a cut-short body is an error, not a fast result.
  reset_peak_rss turnpike || warn "cannot reset VmHWM; streaming RSS includes everything before"
  # -T sends the file with Content-Length; "Expect:" skips curl's 1 s 100-continue wait.
  out=$(curl -sS --max-time 600 -H 'Expect:' -T "$OUT/www/big.bin" \
    -w '%{http_code} %{size_upload} %{speed_upload}' -o "$LOGS/upload-answer.txt" \
    "http://127.0.0.1:$PORT_TURNPIKE/upload") || die "upload through Turnpike failed"
  read -r code sent speed <<<"$out"
  [[ $code == 200 ]] || die "upload answered $code: $(head -c 300 "$LOGS/upload-answer.txt")"
  [[ $(tr -d '[:space:]' <"$LOGS/upload-answer.txt") == "$bytes" ]] ||
    die "sink received $(cat "$LOGS/upload-answer.txt") bytes of $bytes (curl sent $sent)"
  put stream.up_mibs "$(awk -v s="$speed" 'BEGIN {printf "%.0f", s / 1048576}')"
  put stream.up_rss "$(kib_to_mib "$(mem_kib turnpike VmHWM)")"
  info "upload ${STREAM_MIB} MiB: $(get stream.up_mibs) MiB/s, peak RSS $(get stream.up_rss) MiB"

  # Download of the upstream's sparse file.
  reset_peak_rss turnpike || true
  out=$(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
    "http://127.0.0.1:$PORT_TURNPIKE/big.bin") || die "download through Turnpike failed"
  read -r code got speed <<<"$out"
  [[ $code == 200 && $got == "$bytes" ]] || die "download answered $code with $got of $bytes bytes"
  put stream.down_mibs "$(awk -v s="$speed" 'BEGIN {printf "%.0f", s / 1048576}')"
  put stream.down_rss "$(kib_to_mib "$(mem_kib turnpike VmHWM)")"
  info "download ${STREAM_MIB} MiB: $(get stream.down_mibs) MiB/s, peak RSS $(get stream.down_rss) MiB"
  stop turnpike
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
report() {
  local rps_n rps_h fp99_n fp99_h r10k h2r idle srss version table summary extra
  rps_n=$(ratio "$(get turnpike.rps)" "$(get nginx.rps)")
  rps_h=$(ratio "$(get turnpike.rps)" "$(get haproxy.rps)")
  fp99_n=$(ratio "$(get fixed.turnpike.p99)" "$(get fixed.nginx.p99)")
  fp99_h=$(ratio "$(get fixed.turnpike.p99)" "$(get fixed.haproxy.p99)")
  r10k=$(ratio "$(get routes.rps)" "$(get routes1.rps)")
  h2r=$(ratio "$(get h2c.turnpike.rps)" "$(get h2c.direct.rps)")
  idle=$(get turnpike.idle_mib)
  srss=$(awk -v a="$(get stream.up_rss)" -v b="$(get stream.down_rss)" 'BEGIN {
    if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"; else print (a + 0 > b + 0 ? a : b) }')
  [[ $SKIP_STREAMING != 1 ]] || srss=skipped

  table=$(
    echo "target|rps|p50 ms|p99 ms|fixed p50 ms|fixed p99 ms|fixed rps|CPU µs/req|peak RSS MiB|h2c rps|errors|other CPU %"
    for t in "${TARGETS[@]}"; do
      printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$t" "$(get "$t.rps")" "$(get "$t.p50")" \
        "$(get "$t.p99")" "$(get "fixed.$t.p50")" "$(get "fixed.$t.p99")" "$(get "fixed.$t.rps")" \
        "$(get "$t.cpu_us")" "$(get "$t.rss_mib")" "$(get "h2c.$t.rps")" \
        "$(get "$t.errors")/$(get "fixed.$t.errors")/$(get "h2c.$t.errors")" \
        "$(get "$t.other")/$(get "fixed.$t.other")/$(get "h2c.$t.other")"
    done
  )
  summary=$(
    echo "ratio or reading|value|target|verdict"
    echo "Turnpike / nginx rps|$rps_n|>= 1.0|$(verdict "$rps_n" '>=' 1.0)"
    echo "Turnpike / HAProxy rps|$rps_h|>= 1.0|$(verdict "$rps_h" '>=' 1.0)"
    echo "Turnpike / nginx fixed-rate p99|$fp99_n|<= 1.0|$(verdict "$fp99_n" '<=' 1.0)"
    echo "Turnpike / HAProxy fixed-rate p99|$fp99_h||"
    echo "$ROUTES routes / 1 route rps|$r10k|>= 0.95|$(verdict "$r10k" '>=' 0.95)"
    echo "Turnpike idle RSS MiB|$idle|<= 20|$(verdict "$idle" '<=' 20)"
    echo "Turnpike streaming peak RSS MiB|$srss|< 64|$(verdict "$srss" '<' 64)"
    echo "Turnpike / direct h2c rps|$h2r||"
  )
  extra=$(
    echo "Fixed rate: $(get fixed.rate) req/s in total. errors = failed or non-2xx requests in the wrk / fixed-rate / h2c runs."
    echo "Peer header work: PEER_HEADERS=$PEER_HEADERS (same = nginx and HAProxy add the X-Forwarded-*, Forwarded, Via and X-Request-Id headers Turnpike adds; none = they add nothing)."
    echo "other CPU % = share of the machine's CPU used by processes outside the benchmark during the wrk / fixed-rate / h2c runs; above ~10% that row's numbers are depressed, rerun on a quiet machine."
    echo "direct = the upstream nginx alone ($UPSTREAM_WORKERS worker); its CPU and RSS columns are the upstream's own."
    echo "Routes, on /svc$((ROUTES - 1))/bench: 1 route $(get routes1.rps) req/s (p99 $(get routes1.p99) ms, errors $(get routes1.errors), other CPU $(get routes1.other)%), $ROUTES routes $(get routes.rps) req/s (p99 $(get routes.p99) ms, errors $(get routes.errors), other CPU $(get routes.other)%)."
    echo "Turnpike startup: $(get turnpike.startup_ms) ms with 1 route, $(get routes.startup_ms) ms with $ROUTES routes (idle RSS then $(get routes.idle_mib) MiB)."
    if [[ $SKIP_STREAMING == 1 ]]; then echo "Streaming: skipped (SKIP_STREAMING=1)."; else
    echo "Streaming ${STREAM_MIB} MiB: upload $(get stream.up_mibs) MiB/s (peak RSS $(get stream.up_rss) MiB), download $(get stream.down_mibs) MiB/s (peak RSS $(get stream.down_rss) MiB)."; fi
    if ((${#FAILED[@]})); then echo "Failed steps (numbers shown as n/a): $(failed_list)."; fi
  )

  say "results"
  printf '\n%s\n\n%s\n\n%s\n' "$(tty_table <<<"$table")" "$(tty_table <<<"$summary")" "$extra"

  # The same as Markdown, ready to paste into bench/RESULTS.md.
  version=$("$TURNPIKE_BIN" --version 2>/dev/null | head -n1) || version=""
  {
    echo "## Benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) cores, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'); ${version:-turnpike} ($TURNPIKE_BIN)."
    echo "CPU busy before the run: $(get busy)%."
    echo "DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS H2_STREAMS=$H2_STREAMS ROUTES=$ROUTES."
    echo
    md_table <<<"$table"
    echo
    md_table <<<"$summary"
    echo
    # shellcheck disable=SC2001  # two trailing spaces per line: Markdown line breaks
    sed 's/$/  /' <<<"$extra"
  } >"$OUT/results.md"
  printf '\nMarkdown written to %s\n' "${OUT#"$ROOT"/}/results.md"
  if ((${#FAILED[@]})); then warn "failed steps: $(failed_list) (logs in ${LOGS#"$ROOT"/})"; fi
}

# ---------------------------------------------------------------------------------------------
main() {
  if [[ -n ${TURNPIKE_BIN:-} ]]; then TURNPIKE_BIN=$(realpath "$TURNPIKE_BIN"); fi
  cd "$ROOT"
  [[ -n $OUT && -d $ROOT/bench ]] || die "run from the Turnpike repo"
  rm -rf "$OUT"
  mkdir -p "$RUN" "$LOGS" "$RES" "$CONF"

  say "1. tools"; install_tools
  say "2. turnpike"; build_turnpike
  say "3. servers"
  ports_free
  busy_check
  write_configs
  start_backends
  start_nginx
  start_haproxy
  step "turnpike start" scenario_start_turnpike

  say "4. throughput (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, ${WARMUP}s warm-up)"
  for t in "${TARGETS[@]}"; do step "throughput $t" scenario_throughput "$t"; done

  if set_fixed_rate; then
    say "5. fixed rate $(get fixed.rate) req/s (h2load --h1 --rps, ${DURATION}s)"
    for t in "${TARGETS[@]}"; do step "fixed-rate $t" scenario_fixed_rate "$t"; done
  else
    warn "no nginx rps to derive the fixed rate from; fixed-rate runs skipped"
  fi

  say "6. h2c throughput (h2load -m$H2_STREAMS)"
  for t in "${TARGETS[@]}"; do step "h2c $t" scenario_h2c "$t"; done

  say "7. $ROUTES routes"
  step "$ROUTES routes" scenario_routes

  if [[ $SKIP_STREAMING == 1 ]]; then
    info "streaming skipped (SKIP_STREAMING=1)"
  else
    say "8. streaming ${STREAM_MIB} MiB up and down through Turnpike"
    step streaming scenario_streaming
  fi

  report
  ((${#FAILED[@]} == 0))
}

main "$@"
