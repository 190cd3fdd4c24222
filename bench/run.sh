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

say()  { printf '\n== %s\n' "$*" >&2; }
info() { printf '   %s\n' "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }
die()  { printf '!! %s\n' "$*" >&2; exit 1; }

# Results: put KEY VALUE / get KEY (prints n/a when the step that measures it failed).
put() { printf '%s\n' "$2" >"$RES/$1"; }
get() { if [[ -s $RES/$1 ]]; then cat "$RES/$1"; else echo n/a; fi; }

# ---------------------------------------------------------------------------------------------
# Processes: each server runs in its own process group (setsid), so stopping it also stops the
# workers it forked, and the trap can kill everything even when a step failed half-way.
# ---------------------------------------------------------------------------------------------
start_bg() { # NAME CMD...  (output goes to logs/NAME.log)
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

pid_of() { cat "$RUN/$1.pid"; }

group_pids() { # NAME -> pids of every process in its group (nginx master + workers, ...)
  pgrep -g "$(pid_of "$1")" || true
}

stop() { # NAME: SIGTERM the group, give it 5 s, then SIGKILL
  local f=$RUN/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in {1..50}; do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$f"
}

POLICY_RC_CREATED=0
cleanup() {
  local f
  trap - EXIT INT TERM
  for f in "$RUN"/*.pid; do stop "$(basename "$f" .pid)"; done
  remove_policy_rc
}
trap cleanup EXIT
trap 'warn "interrupted; stopping everything this run started"; exit 130' INT
trap 'warn "terminated; stopping everything this run started"; exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # NAME PORT: until it accepts connections; fail early if the process died
  local name=$1 port=$2 deadline=$((SECONDS + STARTUP_TIMEOUT))
  until port_open "$port"; do
    if ! kill -0 "$(pid_of "$name")" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2 || true
      die "$name exited before listening on $port (log: $LOGS/$name.log)"
    fi
    ((SECONDS < deadline)) || die "$name not listening on $port after ${STARTUP_TIMEOUT}s"
    sleep 0.05
  done
}

check_body() { # URL: the proxy really reaches the upstream (a fast 404 or 502 proves nothing)
  local got
  got=$(curl -sS --max-time 5 "$1") || die "GET $1 failed"
  [[ $got == "$BODY" ]] || die "GET $1 answered '${got:0:200}', expected '$BODY'"
}

busy_check() { # wrk, the upstream and the proxy already share the cores: warn about anyone else
  # Busy share of all CPUs over one second from /proc/stat (not the load average, which would
  # still count the cargo build this script may just have run).
  local a b busy
  a=$(head -n1 /proc/stat); sleep 1; b=$(head -n1 /proc/stat)
  busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%.0f", t ? 100 * (t - idle) / t : 0 }')
  put busy "$busy"
  if ((busy > 20)); then
    warn "the CPUs are already ${busy}% busy before the benchmark starts: something else (a cargo"
    warn "build?) competes with it, so throughput will be low and noisy. Compare ratios, or rerun."
  fi
}

ports_free() {
  local p
  for p in "${ALL_PORTS[@]}"; do
    if port_open "$p"; then
      die "port $p on 127.0.0.1 is already in use (left over from an interrupted run? \
check with: ss -ltnp 'sport = :$p')"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# /proc readings: CPU ticks and memory of a whole process group
# ---------------------------------------------------------------------------------------------
cpu_ticks() { # NAME -> utime+stime of all its processes (threads included), in clock ticks
  local pid total=0 stat fields
  for pid in $(group_pids "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }                       # drop "pid (comm) ": comm may contain spaces
    read -r -a fields <<<"$stat"
    total=$((total + fields[11] + fields[12]))   # utime and stime, fields 14 and 15 of stat(5)
  done
  echo "$total"
}

mem_kib() { # NAME FIELD (VmHWM = peak RSS, VmRSS = now) -> KiB summed over the group
  local pid total=0 v
  for pid in $(group_pids "$1"); do
    v=$(awk -v k="$2:" '$1 == k {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# Other processes on the machine (a cargo build, ...) steal CPU from a run and make it slow and
# noisy. CPU time of the whole machine minus ours (servers, load generator) says how much.
cpu_sample() { # VAR: sets VAR to "total busy ours" in clock ticks (no subshell: $BASHPID is us)
  local f ours=0 self fields
  for f in "$RUN"/*.pid; do ours=$((ours + $(cpu_ticks "$(basename "$f" .pid)"))); done
  self=$(<"/proc/$BASHPID/stat"); self=${self##*) }
  read -r -a fields <<<"$self"
  # utime, stime, cutime, cstime: this shell and the children it waited for (wrk, h2load)
  ours=$((ours + fields[11] + fields[12] + fields[13] + fields[14]))
  printf -v "$1" '%s' "$(awk -v o="$ours" 'NR == 1 { t = 0; for (i = 2; i <= 9; i++) t += $i
                                                     print t, t - $5 - $6, o }' /proc/stat)"
}

other_cpu_end() { # KEY BEFORE: stores KEY.other (% of all CPU time used by others); warns
  local t0 b0 o0 t1 b1 o1 pct after
  cpu_sample after
  read -r t0 b0 o0 <<<"$2"
  read -r t1 b1 o1 <<<"$after"
  pct=$(awk -v t=$((t1 - t0)) -v o=$(((b1 - b0) - (o1 - o0))) \
    'BEGIN { p = t > 0 ? 100 * o / t : 0; if (p < 0) p = 0; printf "%.0f", p }')
  put "$1.other" "$pct"
  if ((pct > 10)); then
    warn "$1: other processes used ${pct}% of the machine's CPU during this run; its numbers are low"
  fi
}

kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

reset_peak_rss() { # NAME: restart VmHWM from the current RSS (Linux >= 4.0); false if refused
  local pid
  for pid in $(group_pids "$1"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || return 1; done
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
POLICY_RC=/usr/sbin/policy-rc.d
remove_policy_rc() {
  if ((POLICY_RC_CREATED)); then ${SUDO:-} rm -f "$POLICY_RC"; POLICY_RC_CREATED=0; fi
}

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  if ((${#missing[@]} == 0)); then info "tools present"; return; fi
  ((SKIP_INSTALL == 0)) || die "missing: ${missing[*]} (and SKIP_INSTALL=1)"
  SUDO=""; ((EUID == 0)) || SUDO=sudo
  say "installing ${missing[*]}"
  # The packages' install scripts would start system-wide nginx/HAProxy services (nginx on :80).
  # A policy-rc.d saying "101: not now" stops that; only created when none exists, removed after.
  if [[ ! -e $POLICY_RC ]]; then
    POLICY_RC_CREATED=1
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
    $SUDO chmod 755 "$POLICY_RC"
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >"$LOGS/apt.log" 2>&1 || { tail -n 30 "$LOGS/apt.log" >&2; die "apt-get install failed"; }
  remove_policy_rc
}

# ---------------------------------------------------------------------------------------------
# Turnpike binary
# ---------------------------------------------------------------------------------------------
build_turnpike() {
  if [[ -n ${TURNPIKE_BIN:-} ]]; then
    [[ -x $TURNPIKE_BIN ]] || die "TURNPIKE_BIN=$TURNPIKE_BIN is not executable"
    info "using TURNPIKE_BIN=$TURNPIKE_BIN (not building)"
    return
  fi
  say "cargo build --release -p turnpike"
  (cd "$ROOT" && cargo build --release -p turnpike)
  local dir=${CARGO_TARGET_DIR:-$ROOT/target}
  [[ $dir == /* ]] || dir=$ROOT/$dir
  TURNPIKE_BIN=$dir/release/turnpike
}

# ---------------------------------------------------------------------------------------------
# Configs for every server
# ---------------------------------------------------------------------------------------------

# Lines every private nginx config needs: pid and temp files under bench/out, never /run or
# /var/lib/nginx, and (as root) workers running as root so they can read bench/out.
nginx_common() { # NAME WORKERS
  local dir=$OUT/nginx/$1
  mkdir -p "$dir"
  ((EUID != 0)) || echo "user root root;"
  cat <<EOF
worker_processes $2;
pid $dir/nginx.pid;
error_log $LOGS/$1.error.log warn;
events { worker_connections 8192; }
EOF
}

nginx_http_common() { # NAME: inside http {}
  local dir=$OUT/nginx/$1
  cat <<EOF
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  # nginx closes a client connection after 1000 requests by default; HAProxy and Turnpike do not,
  # and wrk would spend time reconnecting.
  keepalive_requests 1000000;
  keepalive_timeout 300s;
EOF
}

# With PEER_HEADERS=same (the default) nginx and HAProxy do the header work Turnpike does by
# default: X-Forwarded-For/-Proto/-Host, Forwarded and Via to the upstream, a generated
# X-Request-Id sent upstream and returned, Via on the response. That makes the comparison one
# of equal work. PEER_HEADERS=none runs them bare (less work than Turnpike does).
nginx_gateway_headers() {
  [ "$PEER_HEADERS" = same ] || return 0
  cat <<'EOF'
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$http_host\"";
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;
      add_header Via "1.1 nginx" always;
EOF
}

haproxy_gateway_headers() {
  [ "$PEER_HEADERS" = same ] || return 0
  cat <<'EOF'
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header Forwarded "for=%[src];proto=http;host=\"%[req.hdr(host)]\""
  http-request set-header Via "1.1 haproxy"
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  http-response set-header X-Request-Id %[unique-id]
  http-response set-header Via "1.1 haproxy"
EOF
}

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
to_ms() { # wrk latency such as 812.00us, 1.25ms, 1.02s, 1.10m -> milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) { print "n/a"; exit } ; printf "%.3f", n * f }'
}

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

warm_up() { # URL: opens client and upstream keep-alive connections, faults in memory
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$1" >/dev/null
}

run_wrk() { # KEY URL: one measured run; stores KEY.{rps,p50,p99,requests,errors,other}
  local key=$1 url=$2 f=$LOGS/wrk-$1.txt before
  cpu_sample before
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" >"$f"
  other_cpu_end "$key" "$before"
  local rps reqs p50 p99 non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
  reqs=$(awk '/ requests in / {print $1}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
  sockerr=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$f")
  [[ -n $rps && -n $reqs ]] || die "cannot read wrk output $f"
  put "$key.rps" "$rps"; put "$key.requests" "$reqs"
  put "$key.p50" "$p50"; put "$key.p99" "$p99"
  put "$key.errors" "$((${non2xx:-0} + ${sockerr:-0}))"
  info "$key: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $(get "$key.errors")"
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

# A failed step is reported and its numbers show as n/a; the other steps still run. The step
# runs in a subshell with errexit on (errexit is ignored in functions called from `||`).
step() { # NAME CMD...
  local name=$1 rc; shift
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  if ((rc == 130 || rc == 143)); then exit "$rc"; fi
  if ((rc != 0)); then warn "step '$name' failed; its numbers show as n/a"; FAILED+=("$name"); fi
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
ratio() { # A B -> A/B with 2 decimals, n/a when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

verdict() { # VALUE OP LIMIT -> met / MISSED / n/a
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
    ok = (op == ">=") ? v + 0 >= l + 0 : (op == "<=") ? v + 0 <= l + 0 : v + 0 < l + 0
    print ok ? "met" : "MISSED" }'
}

# Tables from |-separated lines whose first line is the header.
tty_table() {
  awk -F'|' '{ n = NR; if (NF > nf) nf = NF
               for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
    END { for (r = 1; r <= n; r++) { s = ""
            for (i = 1; i <= nf; i++) s = s sprintf(i == 1 ? "%-" w[i] "s" : "  %" w[i] "s", c[r, i])
            print s } }'
}
md_table() {
  awk -F'|' '{ s = "|"; for (i = 1; i <= NF; i++) s = s " " $i " |"; print s }
    NR == 1 { s = "|"; for (i = 1; i <= NF; i++) s = s "---|"; print s }'
}

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

failed_list() { local IFS=, s; s="${FAILED[*]}"; echo "${s//,/, }"; }

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
