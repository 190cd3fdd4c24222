#!/usr/bin/env bash
# Turnpike observability benchmark (issue 7, "Speed"): requests/s with metrics scraped, the
# access log written to a rotated file, tracing exported and usage analytics recorded, against
# the same gateway with all of them off; same route, same upstream, same load generator, in
# one run on one machine.
#
#   bash bench/observability.sh                                    # from the repo root; about 9 minutes
#   DURATION=2 WARMUP=1 ROUNDS=1 bash bench/observability.sh       # a quick smoke run
#   TURNPIKE_BIN=target/release/turnpike bash bench/observability.sh   # skip the cargo build
#
# One run:
#  1. installs what is missing of nginx, wrk, curl, python3 (apt-get, as run.sh does) and
#     builds Turnpike (cargo build --release -p turnpike) unless TURNPIKE_BIN is set.
#  2. starts, on 127.0.0.1, each in its own process group (killed on exit, error or Ctrl-C):
#       18480  upstream nginx (UPSTREAM_WORKERS workers), answers "hello world\n" on every path
#       18490  the trace collector: bench/sink.py, which reads each OTLP/HTTP export to its end
#              and answers 200 (it does not decode the spans: Turnpike's own counters,
#              turnpike_trace_spans_exported_total / _dropped_total, say what arrived)
#       one Turnpike per target (server.workers: WORKERS), all with the same single route
#       `/` to the upstream and nothing else different:
#       port   target     what is on
#       18400  off        nothing: /metrics not scraped (the counters always count, and every
#                         target has a metrics.listen, 1841x, for the checks to read), no access
#                         log, no tracing, no admin:
#       18401  all        everything below at once
#       18402  issue      metrics + access log + analytics: the set issue 7's target names
#       18403  metrics    /metrics (18413) scraped every SCRAPE_INTERVAL s while measured
#       18404  log        access_log: json, to bench/out/observability/access/<target>.log,
#                         rotate {max_size: LOG_ROTATE, keep: LOG_KEEP}, sample 1.0
#       18405  trace      tracing: enabled, sample 1.0 (every request: a server span and an
#                         upstream client span), endpoint the collector above
#       18406  analytics  admin: (listen 1842x, SQLite store bench/out/observability/store/
#                         <target>.db, a generated bootstrap token) with analytics on
#     The four single-feature rows (metrics, log, trace, analytics) show what each costs;
#     FEATURE_ROWS=0 leaves them out. Metrics ports are 1841x and admin ports 1842x, x = the
#     target's last digit. A metrics listener that nobody asks costs nothing per request.
#  3. throughput: ROUNDS rounds; each round one wrk run (after a WARMUP-second warm-up) per
#     target, the order rotated every round. While a target with metrics is measured, a
#     scraper fetches its /metrics every SCRAPE_INTERVAL seconds (Prometheus' default is 15 s;
#     1 s is harsher).
#  4. checks after the rounds, so a feature that was "on" but did nothing shows:
#       - access log: lines in the log file and its rotated copies, the files, and
#         turnpike_access_log_dropped_total (lines the writer could not keep up with);
#       - tracing: spans exported and dropped (by reason) per request served;
#       - analytics: each such Turnpike is stopped (SIGTERM: it writes the current minute),
#         then the requests in its store (usage_minute + usage_hour + usage_day) must equal
#         turnpike_requests_total read just before.
#  5. prints the tables (medians over the rounds, ratios per round and their spread, checks)
#     and writes them to bench/out/observability/results.md. Raw output and logs:
#     bench/out/observability/logs/.
#
# The collector and the scraper share the 2 cores with everything else (a real collector
# would not): the collector's CPU per request is shown in its own column, so its share of
# the cost can be judged. Both count as the benchmark's own CPU, not as "other" load.
#
# Targets (issue 7): metrics + access log + analytics on >= 0.90x the rps with all off
# (row `issue`); the same with tracing (sample 1.0) on too (row `all`).
#
# Options (environment; defaults in brackets): DURATION [10] WARMUP [2] CONNECTIONS [50]
# WRK_THREADS [2] WORKERS [2] UPSTREAM_WORKERS [1] TURNPIKE_BIN SKIP_INSTALL [0]
# TURNPIKE_LOG [warn] STARTUP_TIMEOUT [60] as in run.sh / traffic.sh, and
#   ROUNDS [5]            alternating rounds; medians over them
#   FEATURE_ROWS [1]      0 leaves out the single-feature rows (metrics, log, trace, analytics)
#   SCRAPE_INTERVAL [1]   seconds between scrapes of /metrics during a measured run
#   LOG_ROTATE [64MiB]    access-log rotate.max_size
#   LOG_KEEP [2]          access-log rotate.keep (disk use at most (LOG_KEEP + 1) × LOG_ROTATE per target)
#   TRACE_SAMPLE [1.0]    tracing.sample
#   TRACE_BATCH, TRACE_QUEUE   tracing.batch_size / max_queue when set (else Turnpike's
#                         defaults, 512 / 4096). Spans that find the queue full are dropped
#                         (a request never waits for the exporter); the checks count them.
#
# Only 127.0.0.1 is used. Files go to bench/out/observability/ (git-ignored). A lock
# (/tmp/turnpike-bench-observability.lock) allows one observability.sh at a time on a machine.
set -euo pipefail
shopt -s inherit_errexit nullglob

# ---------------------------------------------------------------------------------------------
# Settings (environment)
# ---------------------------------------------------------------------------------------------
DURATION=${DURATION:-10}            # seconds per measured run
WARMUP=${WARMUP:-2}                 # seconds of load before each measured run
CONNECTIONS=${CONNECTIONS:-50}      # concurrent client connections (wrk -c)
WRK_THREADS=${WRK_THREADS:-2}       # load generator threads (wrk -t)
WORKERS=${WORKERS:-2}               # Turnpike server.workers
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}  # upstream nginx workers: few, to leave CPU to Turnpike
ROUNDS=${ROUNDS:-5}                 # alternating rounds over every target; medians
FEATURE_ROWS=${FEATURE_ROWS:-1}     # 1: measure each feature alone too
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-1}    # seconds between scrapes while a target is measured
LOG_ROTATE=${LOG_ROTATE:-64MiB}     # access_log.rotate.max_size
LOG_KEEP=${LOG_KEEP:-2}             # access_log.rotate.keep
TRACE_SAMPLE=${TRACE_SAMPLE:-1.0}   # tracing.sample
TRACE_BATCH=${TRACE_BATCH:-}        # tracing.batch_size; empty: Turnpike's default (512)
TRACE_QUEUE=${TRACE_QUEUE:-}        # tracing.max_queue; empty: Turnpike's default (4096)
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}   # seconds a server gets to start listening
SKIP_INSTALL=${SKIP_INSTALL:-0}     # 1: do not install anything (fail if a tool is missing)
PEER_HEADERS=none                   # no peer proxies here (lib.sh reads it)
# TURNPIKE_BIN: use this binary instead of building target/release/turnpike.

PORT_UPSTREAM=18480
PORT_SINK=18490
BODY="hello world"                  # what the upstream answers on every path

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out/observability
RUN=$OUT/run          # NAME.pid for every process group we started (cleanup kills them all)
LOGS=$OUT/logs        # server logs and raw load-generator output
RES=$OUT/results      # one file per measured value; steps run in subshells and share through it
CONF=$OUT/conf        # server configs
PATH=$PATH:/usr/sbin:/sbin   # nginx lives in sbin, often not on a user's PATH
CLK_TCK=$(getconf CLK_TCK)
FAILED=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TARGETS=(off all issue)
((FEATURE_ROWS == 0)) || TARGETS+=(metrics log trace analytics)

# target -> its index (ports 1840x, metrics 1841x, admin 1842x) and features
index_of() {
  case $1 in off) echo 0 ;; all) echo 1 ;; issue) echo 2 ;; metrics) echo 3 ;; log) echo 4 ;;
    trace) echo 5 ;; analytics) echo 6 ;; *) die "unknown target $1" ;; esac
}
features_of() {
  case $1 in
    off) echo "" ;;
    all) echo "metrics log trace analytics" ;;
    issue) echo "metrics log analytics" ;;
    *) echo "$1" ;;
  esac
}
has() { [[ " $(features_of "$1") " == *" $2 "* ]]; }  # TARGET FEATURE
port_of() { echo $((18400 + $(index_of "$1"))); }
metrics_port_of() { echo $((18410 + $(index_of "$1"))); }
admin_port_of() { echo $((18420 + $(index_of "$1"))); }

label_of() {
  case $1 in
    off) echo "all off" ;;
    all) echo "all on: metrics, access log, tracing, analytics" ;;
    issue) echo "metrics + access log + analytics (issue 7's set)" ;;
    metrics) echo "metrics scraped only" ;;
    log) echo "access log only" ;;
    trace) echo "tracing only (sample $TRACE_SAMPLE)" ;;
    analytics) echo "analytics only (admin + SQLite)" ;;
  esac
}

ALL_PORTS=("$PORT_UPSTREAM" "$PORT_SINK")
for t in "${TARGETS[@]}"; do
  ALL_PORTS+=("$(port_of "$t")" "$(metrics_port_of "$t")")
  ! has "$t" analytics || ALL_PORTS+=("$(admin_port_of "$t")")
done

# The admin API's first token (tpa_<12>_<43>, as docs/admin.md makes it): only to keep the
# API from warning that it has none; the benchmark never calls the API.
# (Not `tr </dev/urandom | head`: tr's SIGPIPE fails the pipeline under pipefail.)
rand_alnum() { # N -> N random letters and digits
  local a=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 s=""
  while ((${#s} < $1)); do s+=${a:RANDOM % 62:1}; done
  echo "$s"
}
ADMIN_TOKEN="tpa_$(rand_alnum 12)_$(rand_alnum 43)"

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
write_configs() {
  write_upstream_nginx_conf
  mkdir -p "$OUT/access" "$OUT/store"
  local t
  for t in "${TARGETS[@]}"; do write_turnpike_config "$t"; done

  cat >"$CONF/scraper.sh" <<'EOF'
#!/usr/bin/env bash
# scraper.sh URL INTERVAL COUNT_FILE: GET URL every INTERVAL seconds, like Prometheus
n=0
while :; do
  if curl -sf --max-time 5 -o /dev/null "$1"; then n=$((n + 1)); echo "$n" >"$3"; fi
  sleep "$2"
done
EOF
  chmod +x "$CONF/scraper.sh"
}

write_turnpike_config() { # TARGET
  local t=$1
  {
    cat <<EOF
listen: 127.0.0.1:$(port_of "$t")
server:
  workers: $WORKERS
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
routes:
  - {name: api, paths: ["/"], upstream: backend}
EOF
    # Every Turnpike has a metrics listener, so the checks can read its counters; only the
    # targets with the metrics feature are scraped while they are measured.
    cat <<EOF
metrics:
  listen: 127.0.0.1:$(metrics_port_of "$t")
EOF
    ! has "$t" log || cat <<EOF
access_log:
  enabled: true
  format: json
  output: $OUT/access/$t.log
  rotate: {max_size: $LOG_ROTATE, keep: $LOG_KEEP}
EOF
    ! has "$t" trace || cat <<EOF
tracing:
  enabled: true
  endpoint: http://127.0.0.1:$PORT_SINK
  sample: $TRACE_SAMPLE
  service_name: turnpike-bench
EOF
    if has "$t" trace; then
      [[ -z $TRACE_BATCH ]] || echo "  batch_size: $TRACE_BATCH"
      [[ -z $TRACE_QUEUE ]] || echo "  max_queue: $TRACE_QUEUE"
    fi
    ! has "$t" analytics || cat <<EOF
admin:
  listen: 127.0.0.1:$(admin_port_of "$t")
  store: $OUT/store/$t.db
analytics:
  enabled: true
EOF
  } >"$CONF/turnpike-$t.yaml"
}

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
start_servers() {
  local t
  say "starting upstream nginx, the trace collector and ${#TARGETS[@]} Turnpikes"
  for t in "${TARGETS[@]}"; do
    "$TURNPIKE_BIN" validate --config "$CONF/turnpike-$t.yaml" >"$LOGS/validate-$t.log" 2>&1 ||
      { cat "$LOGS/validate-$t.log" >&2; die "turnpike rejects $CONF/turnpike-$t.yaml"; }
  done
  start_bg upstream nginx -p "$OUT/nginx/upstream" -e stderr -c "$CONF/upstream.nginx.conf" -g 'daemon off;'
  start_bg sink python3 "$ROOT/bench/sink.py" "$PORT_SINK"
  for t in "${TARGETS[@]}"; do
    TURNPIKE_ADMIN_TOKEN=$ADMIN_TOKEN TURNPIKE_LOG=${TURNPIKE_LOG:-warn} \
      start_bg "tp-$t" "$TURNPIKE_BIN" serve --no-watch --config "$CONF/turnpike-$t.yaml"
  done
  wait_port upstream "$PORT_UPSTREAM"
  wait_port sink "$PORT_SINK"
  for t in "${TARGETS[@]}"; do
    wait_port "tp-$t" "$(port_of "$t")"
    wait_port "tp-$t" "$(metrics_port_of "$t")"
    ! has "$t" analytics || wait_port "tp-$t" "$(admin_port_of "$t")"
    check_body "http://127.0.0.1:$(port_of "$t")/"
  done
  info "every Turnpike answers '$BODY'"
}

metrics_url_of() { echo "http://127.0.0.1:$(metrics_port_of "$1")/metrics"; }  # TARGET

metric() { # URL NAME [LABEL=VALUE...] -> the sample's value, summed over the series that
  local labels="${*:3}"   # have every label given (0 when there is none)
  curl -sS --max-time 5 "$1" |
    awk -v n="$2" -v ls="$labels" 'BEGIN { k = split(ls, want, " ") }
      { name = $1; sub(/\{.*/, "", name); if (name != n) next
        for (i = 1; i <= k; i++) { split(want[i], kv, "="); if (!index($1, kv[1] "=\"" kv[2] "\"")) next }
        v += $2 }
      END { printf "%.0f\n", v + 0 }'
}

# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------
measure() { # TARGET ROUND: scraper on (if metrics), warm-up, one wrk run; CPU per request
  local t=$1 r=$2 url cpu0 cpu1 sink0 sink1 n
  url="http://127.0.0.1:$(port_of "$t")/"
  stop scraper   # one left over from a run that failed half-way
  if has "$t" metrics; then
    rm -f "$RES/scrapes.now"
    start_bg scraper "$CONF/scraper.sh" "$(metrics_url_of "$t")" "$SCRAPE_INTERVAL" "$RES/scrapes.now"
  fi
  warm_up "$url"
  cpu0=$(cpu_ticks "tp-$t"); sink0=$(cpu_ticks sink)
  run_wrk "$t.r$r" "$url"
  cpu1=$(cpu_ticks "tp-$t"); sink1=$(cpu_ticks sink)
  if has "$t" metrics; then
    stop scraper
    put "$t.r$r.scrapes" "$(cat "$RES/scrapes.now" 2>/dev/null || echo 0)"
  fi
  n=$(get "$t.r$r.requests")
  put "$t.r$r.cpu_us" "$(awk -v d="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
  put "$t.r$r.sink_us" "$(awk -v d="$((sink1 - sink0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
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
# Checks: every feature that was on did its work
# ---------------------------------------------------------------------------------------------
check_target() { # TARGET
  local t=$1 murl lines files log
  murl=$(metrics_url_of "$t")
  put "$t.served" "$(metric "$murl" turnpike_requests_total)"
  if has "$t" log; then
    log=$OUT/access/$t.log
    files=0 lines=0
    for f in "$log" "$log".[0-9]*; do
      [[ -f $f ]] || continue
      files=$((files + 1)); lines=$((lines + $(wc -l <"$f")))
    done
    put "$t.log_lines" "$lines"; put "$t.log_files" "$files"
    put "$t.log_mib" "$(du -cm "$log"* 2>/dev/null | awk 'END {print $1}')"
    put "$t.log_dropped" "$(metric "$murl" turnpike_access_log_dropped_total)"
    # The last line is one JSON object with a status.
    tail -n1 "$log" | python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); assert "status" in d, d' ||
      die "$t: the access log's last line is not a JSON object with a status: $(tail -n1 "$log" | head -c 300)"
  fi
  if has "$t" trace; then
    put "$t.spans" "$(metric "$murl" turnpike_trace_spans_exported_total)"
    put "$t.spans_dropped" "$(metric "$murl" turnpike_trace_spans_dropped_total)"
    put "$t.spans_qfull" "$(metric "$murl" turnpike_trace_spans_dropped_total reason=queue_full)"
    local spans=$(($(get "$t.spans") + $(get "$t.spans_dropped")))
    if (($(get "$t.spans_dropped") * 100 > spans)); then
      warn "$t: $(get "$t.spans_dropped") of $spans spans dropped ($(get "$t.spans_qfull") because the export queue was full)"
    fi
  fi
  if has "$t" analytics; then
    # SIGTERM makes Turnpike write the current minute before it exits.
    stop "tp-$t"
    if grep -qi 'panic' "$LOGS/tp-$t.log"; then warn "tp-$t's log after stopping: $(tail -n 3 "$LOGS/tp-$t.log")"; fi
    put "$t.analytics" "$(python3 - "$OUT/store/$t.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n = 0
for table in ("usage_minute", "usage_hour", "usage_day"):
    n += db.execute(f"SELECT COALESCE(SUM(requests), 0) FROM {table} WHERE route = 'api'").fetchone()[0]
print(n)
EOF
)"
    if [[ $(get "$t.analytics") != "$(get "$t.served")" ]]; then
      warn "$t: the store counted $(get "$t.analytics") requests, /metrics $(get "$t.served")"
    fi
  fi
  info "$t: served $(get "$t.served")$(! has "$t" log || echo ", log $(get "$t.log_lines") lines in $(get "$t.log_files") files, dropped $(get "$t.log_dropped")")$(! has "$t" trace || echo ", spans exported $(get "$t.spans"), dropped $(get "$t.spans_dropped")")$(! has "$t" analytics || echo ", analytics store $(get "$t.analytics") requests")"
}

scenario_checks() {
  local t
  for t in "${TARGETS[@]}"; do step "checks $t" check_target "$t"; done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
collector_cell() { # the OTLP sink's CPU per request, for targets that trace
  if has "$1" trace; then median_of sink_us "$1" 1; else echo -; fi
}

report() {
  local t r table ratios checks extra version header
  for t in "${TARGETS[@]}"; do put "$t.rps" "$(median_of rps "$t")"; done

  table=$(rounds_table "collector CPU µs/req" collector_cell)
  ratios=$(
    echo "ratio (rps)|per round|spread|median of rounds|of the medians|target|verdict"
    ratio_line "metrics + access log + analytics / all off" issue off '>=' 0.90
    ratio_line "all on (with tracing) / all off" all off '>=' 0.90
    if ((FEATURE_ROWS)); then
      for t in metrics log trace analytics; do ratio_line "$(label_of "$t") / all off" "$t" off; done
    fi
  )
  checks=$(
    echo "target|requests served|scrapes|access-log lines kept (files)|MiB|lines dropped|spans exported|spans dropped (queue full)|analytics: requests in the store"
    for t in "${TARGETS[@]}"; do
      printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$(label_of "$t")" "$(get "$t.served")" \
        "$(if has "$t" metrics; then sum_of scrapes "$t"; else echo -; fi)" \
        "$(if has "$t" log; then echo "$(get "$t.log_lines") ($(get "$t.log_files"))"; else echo -; fi)" \
        "$(if has "$t" log; then get "$t.log_mib"; else echo -; fi)" \
        "$(if has "$t" log; then get "$t.log_dropped"; else echo -; fi)" \
        "$(if has "$t" trace; then get "$t.spans"; else echo -; fi)" \
        "$(if has "$t" trace; then echo "$(get "$t.spans_dropped") ($(get "$t.spans_qfull"))"; else echo -; fi)" \
        "$(if has "$t" analytics; then get "$t.analytics"; else echo -; fi)"
    done
  )
  extra=$(
    echo "Same route (/ → upstream nginx answering 'hello world'), one Turnpike per target, server.workers $WORKERS. Off: /metrics not scraped (Turnpike's counters always count; each target has a metrics.listen, read only by the checks after the rounds), no access_log, no tracing, no admin: (so no store and no analytics)."
    echo "On: metrics.listen scraped every ${SCRAPE_INTERVAL}s during the measured runs; access_log json to a file, rotate {max_size: $LOG_ROTATE, keep: $LOG_KEEP}, every request; tracing sample $TRACE_SAMPLE (a server span and an upstream span per sampled request) exported over OTLP/HTTP JSON to bench/sink.py on the same machine; admin: with a SQLite store and analytics on (flushed every 5 s, the default)."
    echo "Checks: requests served = turnpike_requests_total after the rounds (warm-ups and checks included); the access log keeps only the current file and $LOG_KEEP rotated ones, so its line count is at most what was written; analytics counts the store after a SIGTERM (which writes the current minute) and must equal requests served."
    echo "Medians over $ROUNDS rounds of wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up, the order rotated each round. Spread: lowest–highest per-round ratio. CPU µs/req: the target's Turnpike; collector CPU µs/req: bench/sink.py's, which a real deployment runs elsewhere. other CPU %: machine CPU used outside the benchmark (collector and scraper count as the benchmark's), the worst round."
    if ((FEATURE_ROWS)); then
      echo "CPU µs/req over all off (medians): issue's set $(cpu_diff issue off), all on $(cpu_diff all off); metrics scraped $(cpu_diff metrics off), access log $(cpu_diff log off), tracing $(cpu_diff trace off), analytics $(cpu_diff analytics off)."
    else
      echo "CPU µs/req over all off (medians): issue's set $(cpu_diff issue off), all on $(cpu_diff all off)."
    fi
    if ((${#FAILED[@]})); then echo "Failed steps (numbers shown as n/a): $(failed_list)."; fi
  )

  say "results"
  printf '\n%s\n\n%s\n\n%s\n\n%s\n' "$(tty_table <<<"$table")" "$(tty_table <<<"$ratios")" \
    "$(tty_table <<<"$checks")" "$extra"

  version=$("$TURNPIKE_BIN" --version 2>/dev/null | head -n1) || version=""
  {
    echo "## Observability benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) cores, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //') (upstream); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); ${version:-turnpike} ($TURNPIKE_BIN)."
    echo "CPU busy before the run: $(get busy)%."
    echo "DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS ROUNDS=$ROUNDS SCRAPE_INTERVAL=${SCRAPE_INTERVAL}s LOG_ROTATE=$LOG_ROTATE LOG_KEEP=$LOG_KEEP TRACE_SAMPLE=$TRACE_SAMPLE TRACE_BATCH=${TRACE_BATCH:-default} TRACE_QUEUE=${TRACE_QUEUE:-default}."
    echo
    md_table <<<"$table"
    echo
    md_table <<<"$ratios"
    echo
    md_table <<<"$checks"
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
  exec {lock}>"${TMPDIR:-/tmp}/turnpike-bench-observability.lock"
  flock -n "$lock" || die "another bench/observability.sh is running on this machine; wait for it to finish"
  ports_free
  rm -rf "$OUT"
  mkdir -p "$RUN" "$LOGS" "$RES" "$CONF"

  say "1. tools"; install_missing nginx:nginx wrk:wrk curl:curl python3:python3
  say "2. turnpike"; build_turnpike
  say "3. configs and servers"
  ports_free
  write_configs
  busy_check
  start_servers

  say "4. throughput: $ROUNDS rounds of ${TARGETS[*]} (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, ${WARMUP}s warm-up)"
  scenario_rounds

  say "5. checks: log lines, spans, analytics rows"
  scenario_checks

  report
  ((${#FAILED[@]} == 0))
}

main "$@"
