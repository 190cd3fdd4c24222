# shellcheck shell=bash
# Shared helpers of the benchmark scripts (bench/run.sh, auth.sh, traffic.sh, cache.sh,
# observability.sh); sourced, not run.
#
# The sourcing script sets these first (see run.sh for their meaning):
#   ROOT OUT RUN LOGS RES      repo root, output dir, pid files, logs, one file per result
#   DURATION WARMUP CONNECTIONS WRK_THREADS STARTUP_TIMEOUT SKIP_INSTALL PEER_HEADERS
#   BODY                       what the upstream answers
#   ALL_PORTS                  every port the script listens on (checked free by ports_free)
#   CLK_TCK FAILED             getconf CLK_TCK; an empty array of failed step names
# Sourcing installs the EXIT/INT/TERM traps that stop every process group started with start_bg.

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

check_body() { # URL [CURL_ARGS...]: the proxy really reaches the upstream (a fast 404 or 502
  local got      # proves nothing)
  got=$(curl -sS --max-time 5 "${@:2}" "$1") || die "GET $1 failed"
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

install_missing() { # COMMAND:PACKAGE...: apt-get install the packages whose command is missing
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
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
# nginx configs
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

# ---------------------------------------------------------------------------------------------
# Load generator output, steps, report tables
# ---------------------------------------------------------------------------------------------
to_ms() { # wrk latency such as 812.00us, 1.25ms, 1.02s, 1.10m -> milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) { print "n/a"; exit } ; printf "%.3f", n * f }'
}

warm_up() { # URL [WRK_ARGS...]: opens client and upstream keep-alive connections, faults in memory
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${@:2}" "$1" >/dev/null
}

run_wrk() { # KEY URL [WRK_ARGS...]: one measured run; stores KEY.{rps,p50,p99,requests,errors,other}
  local key=$1 url=$2 f=$LOGS/wrk-$1.txt before
  cpu_sample before
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${@:3}" "$url" >"$f"
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

failed_list() { local IFS=, s; s="${FAILED[*]}"; echo "${s//,/, }"; }

# ---------------------------------------------------------------------------------------------
# Configs shared by the scripts
# ---------------------------------------------------------------------------------------------
# With PEER_HEADERS=same HAProxy does the header work Turnpike does (forwarding headers, Via,
# a request id), so the comparison is like for like.
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

# The upstream every proxy forwards to: nginx answering $BODY on /, on $PORT_UPSTREAM.
write_upstream_nginx_conf() {
  {
    nginx_common upstream "$UPSTREAM_WORKERS"
    cat <<EOF
http {
$(nginx_http_common upstream)
  server {
    listen 127.0.0.1:$PORT_UPSTREAM backlog=4096;
    location / { return 200 "$BODY\n"; }
  }
}
EOF
  } >"$CONF/upstream.nginx.conf"
}

# ---------------------------------------------------------------------------------------------
# Rounds (traffic.sh, cache.sh, observability.sh): TARGET.rN.SUFFIX results over ROUNDS rounds,
# medians, per-round ratios and their spread. auth.sh keeps its own (mean-based) versions.
# ---------------------------------------------------------------------------------------------
median() { # numbers on stdin -> their median (mean of the middle two for an even count)
  sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'
}

round_vals() { # SUFFIX TARGET -> one value per round (n/a where missing)
  local r; for r in $(seq "$ROUNDS"); do get "$2.r$r.$1"; done
}

median_of() { # SUFFIX TARGET [DECIMALS] -> median over rounds, n/a if any round is missing
  local vals; vals=$(round_vals "$1" "$2")
  if grep -qv '^[0-9.]*$' <<<"$vals"; then echo n/a; return; fi
  awk -v d="${3:-0}" '{ printf "%." d "f\n", $1 }' <<<"$(median <<<"$vals")"
}

sum_of() { round_vals "$1" "$2" | awk '$1 !~ /^[0-9]+$/ { bad = 1 } { s += $1 } END { if (bad) print "n/a"; else print s }'; }
max_of() { round_vals "$1" "$2" | awk '$1 ~ /^[0-9.]+$/ && $1 + 0 >= m { m = $1 + 0; ok = 1 } END { if (ok) print m; else print "n/a" }'; }

round_ratios() { # A B -> A/B of each round, one per line
  local r; for r in $(seq "$ROUNDS"); do printf '%s\n' "$(ratio "$(get "$1.r$r.rps")" "$(get "$2.r$r.rps")")"; done
}

# One line of the ratio table: name|per round|min–max|median of rounds|ratio of medians|target|verdict
ratio_line() { # NAME A B [OP LIMIT]
  local per med spread rm verdict="" target=""
  per=$(round_ratios "$2" "$3" | paste -sd' ' | sed 's/ /, /g')
  if round_ratios "$2" "$3" | grep -q 'n/a'; then med=n/a spread=n/a
  else
    med=$(round_ratios "$2" "$3" | median | awk '{ printf "%.2f", $1 }')
    spread=$(round_ratios "$2" "$3" | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print a "–" b }')
  fi
  rm=$(ratio "$(get "$2.rps")" "$(get "$3.rps")")
  if [[ -n ${4:-} ]]; then
    target="$4 $5"
    verdict=$(verdict "$rm" "$4" "$5")
    if [[ $verdict != n/a ]]; then
      local below
      below=$(round_ratios "$2" "$3" | awk -v l="$5" -v op="$4" '{ if (op == ">=" ? $1 + 0 < l + 0 : $1 + 0 > l + 0) n++ } END { print n + 0 }')
      if ((below == 0)); then verdict+=" (every round)"; else verdict+=" ($below of $ROUNDS rounds not)"; fi
    fi
  fi
  echo "$1|$per|$spread|$med|$rm|$target|$verdict"
}

cpu_diff() { # A B -> difference of the median CPU µs/req
  awk -v a="$(median_of cpu_us "$1" 1)" -v b="$(median_of cpu_us "$2" 1)" 'BEGIN {
    if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"; else printf "%+.1f µs", a - b }'
}

rounds_table() { # EXTRA_HEADER EXTRA_FN: per target, rps of every round, medians, and one
  # column of the script's own (EXTRA_FN TARGET prints its cell); '|'-separated lines
  local extra_header=$1 extra_fn=$2 header t r
  header="target"
  for r in $(seq "$ROUNDS"); do header+="|rps r$r"; done
  header+="|median rps|p50 ms|p99 ms|CPU µs/req|$extra_header|errors|other CPU %"
  echo "$header"
  for t in "${TARGETS[@]}"; do
    printf '%s' "$(label_of "$t")"
    for r in $(seq "$ROUNDS"); do printf '|%s' "$(get "$t.r$r.rps")"; done
    printf '|%s|%s|%s|%s|%s|%s|%s\n' "$(get "$t.rps")" "$(median_of p50 "$t" 3)" "$(median_of p99 "$t" 3)" \
      "$(median_of cpu_us "$t" 1)" "$("$extra_fn" "$t")" "$(sum_of errors "$t")" "$(max_of other "$t")"
  done
}
