#!/usr/bin/env bash
# Turnpike auth benchmark: the cost of API-key and JWT authentication, measured side by side in
# one run on one Turnpike process whose routes differ only in their auth policy.
#
#   bash bench/auth.sh                # from the repo root; see bench/README.md
#
# Routes /plain (no auth), /key (key_auth, KEYS keys loaded) and /jwt (RS256) are loaded with wrk
# in alternating rounds; nginx proxying the same upstream is the absolute reference. The memory
# and start-up cost of the keys comes from a second config without consumers or keys.
#
# Everything it starts runs from private files under bench/out/auth/ (git-ignored) and is killed
# when the script exits, on success, on error and on Ctrl-C. Only 127.0.0.1 is used.
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
ROUNDS=${ROUNDS:-3}                 # alternating rounds over every target, averaged
KEYS=${KEYS:-100000}                # API keys (and consumers) loaded
JWT_TOKENS=${JWT_TOKENS:-100000}    # distinct tokens for the uncached-JWT row; 0 skips that row
START_RUNS=${START_RUNS:-3}         # starts per config for the start-up time (median)
IDLE_SECONDS=${IDLE_SECONDS:-5}     # idle CPU of Turnpike is read over this long
PEER_HEADERS=${PEER_HEADERS:-same}  # same: nginx adds the headers Turnpike adds; none: bare
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}  # seconds a server gets to start listening
SKIP_INSTALL=${SKIP_INSTALL:-0}     # 1: do not install anything (fail if a tool is missing)
# TURNPIKE_BIN: use this binary instead of building target/release/turnpike.

# Ports, all on 127.0.0.1; not run.sh's, so a stale run.sh server does not get in the way.
PORT_TURNPIKE=18100
PORT_NGINX=18101
PORT_UPSTREAM=18180
ALL_PORTS=("$PORT_TURNPIKE" "$PORT_NGINX" "$PORT_UPSTREAM")

BODY="hello world"                  # what the upstream answers on every path

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out/auth
RUN=$OUT/run          # NAME.pid for every process group we started (cleanup kills them all)
LOGS=$OUT/logs        # server logs and raw load-generator output
RES=$OUT/results      # one file per measured value; steps run in subshells and share through it
CONF=$OUT/conf        # server configs
CRED=$OUT/cred        # key secret, keys file, RSA keys, tokens
JWT_CACHE=$ROOT/bench/out/auth-jwt   # RSA key pair and signed tokens, reused by later runs
PATH=$PATH:/usr/sbin:/sbin   # nginx lives in sbin, often not on a user's PATH
CLK_TCK=$(getconf CLK_TCK)
FAILED=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Rows of the throughput table, in this order. jwt-distinct is left out when JWT_TOKENS=0.
TARGETS=(nginx plain plain-bearer key jwt)
((JWT_TOKENS == 0)) || TARGETS+=(jwt-distinct)

label_of() {
  case $1 in
    nginx) echo "nginx, no auth (reference)" ;;
    plain) echo "turnpike /plain, no auth" ;;
    plain-bearer) echo "turnpike /plain, no auth, sending the JWT's bytes anyway" ;;
    key) echo "turnpike /key, key_auth ($KEYS keys)" ;;
    jwt) echo "turnpike /jwt, RS256, one token" ;;
    jwt-distinct) echo "turnpike /jwt, RS256, $JWT_TOKENS distinct tokens" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
install_tools() {
  install_missing nginx:nginx wrk:wrk curl:curl python3:python3
  if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
    ((SKIP_INSTALL == 0)) || die "python3 lacks PyJWT or cryptography (and SKIP_INSTALL=1)"
    say "installing PyJWT and cryptography for python3"
    python3 -m pip install -q pyjwt cryptography >"$LOGS/pip.log" 2>&1 ||
      { tail -n 20 "$LOGS/pip.log" >&2; die "pip install pyjwt cryptography failed"; }
  fi
}

# ---------------------------------------------------------------------------------------------
# Credentials and configs
# ---------------------------------------------------------------------------------------------
make_credentials() {
  local t0
  mkdir -p "$CRED"
  t0=$SECONDS
  python3 "$ROOT/bench/authgen.py" keys "$CRED" "$KEYS"
  info "$KEYS keys and consumers in $((SECONDS - t0)) s" \
    "(keys file $(du -h "$CRED/keys.json" | cut -f1))"
  # Signing the distinct tokens takes about 1 ms each, so the key pair and the tokens are kept
  # in JWT_CACHE and reused while JWT_TOKENS stays the same (run.sh's rm -rf bench/out clears it).
  local f
  if ((JWT_TOKENS == 0)); then   # one token: quick, and the cache of a larger set is kept
    python3 "$ROOT/bench/authgen.py" jwt "$CRED" 0
    info "RSA 2048 key pair and one RS256 token made"
  elif [[ -s $JWT_CACHE/tokens.txt && $(wc -l <"$JWT_CACHE/tokens.txt") -eq $JWT_TOKENS ]]; then
    info "RSA key pair and 1 + $JWT_TOKENS RS256 tokens reused from ${JWT_CACHE#"$ROOT"/}"
  else
    t0=$SECONDS
    rm -rf "$JWT_CACHE"
    mkdir -p "$JWT_CACHE"
    python3 "$ROOT/bench/authgen.py" jwt "$JWT_CACHE" "$JWT_TOKENS"
    info "RSA 2048 key pair, 1 + $JWT_TOKENS RS256 tokens in $((SECONDS - t0)) s"
  fi
  if ((JWT_TOKENS > 0)); then
    for f in rsa-priv.pem rsa-pub.pem token.jwt tokens.txt; do cp "$JWT_CACHE/$f" "$CRED/"; done
  fi
  API_KEY=$(<"$CRED/api-key.txt")
  TOKEN=$(<"$CRED/token.jwt")
  # Turnpike reads the secret from the environment, as the docs advise (`${TURNPIKE_KEY_SECRET}`).
  TURNPIKE_KEY_SECRET=$(<"$CRED/key_secret")
  export TURNPIKE_KEY_SECRET
}

write_nginx_configs() {
  write_upstream_nginx_conf

  # nginx as the reverse proxy, as in run.sh: keep-alive upstream pool, HTTP/1.1, no logging.
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
}

# The three routes, with or without the consumers and the keys file. The JWT provider is in
# both, so the two configs differ only in the consumers and keys.
write_turnpike_config() { # FILE with-keys|no-keys
  local file=$1 keys=$2
  {
    cat <<EOF
listen: 127.0.0.1:$PORT_TURNPIKE
server:
  workers: $WORKERS
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:$PORT_UPSTREAM
auth:
  key_secret: \${TURNPIKE_KEY_SECRET}
EOF
    [[ $keys == no-keys ]] || echo "  keys_file: $CRED/keys.json"
    cat <<EOF
  jwt:
    - name: bench
      algorithms: [RS256]
      keys: [{file: $CRED/rsa-pub.pem}]
routes:
  - {name: plain, paths: ["/plain"], upstream: backend}
  - {name: key, paths: ["/key"], upstream: backend, auth: {methods: [key_auth]}}
  - {name: jwt, paths: ["/jwt"], upstream: backend, auth: {methods: [jwt]}}
EOF
    [[ $keys == no-keys ]] || cat "$CRED/consumers.yaml"
  } >"$file"
}

# wrk cycles through the distinct tokens; the threads start evenly spaced from a random place
# in the list, so the same token comes back only after JWT_TOKENS requests (10x the gateway's 10,000-entry
# verified-token cache by default, so about 90% of the requests are misses). The requests are
# formatted once, in init, so the per-request Lua work is a table lookup.
write_wrk_script() {
  cat >"$CONF/tokens.lua" <<'EOF'
local requests, n, i = {}, 0, 0
local started, start = 0, nil
-- setup runs in the main Lua state, once per thread: one random start for this wrk run (so the
-- warm-up and earlier runs did not just verify the same tokens), and each thread its own part.
function setup(thread)
  if not start then
    math.randomseed(os.time())
    start = math.random(0, 1000000000)
  end
  started = started + 1
  thread:set("index", started)   -- globals in the thread's own Lua state
  thread:set("base", start)
end
function init(args)
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    n = n + 1
    requests[n] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
  end
  local threads = tonumber(os.getenv("WRK_THREADS")) or 1
  i = (base + math.floor((index - 1) * n / threads)) % n
end
function request()
  i = i % n + 1
  return requests[i]
end
EOF
}

# `turnpike keys create` makes one key with the Rust code; the hash our generator computes for
# that key must equal the one Turnpike wrote. (The requests below check the keys themselves.)
check_key_format() {
  local cfg=$CONF/keycheck.yaml file=$CRED/keycheck.json key stored ours
  cat >"$cfg" <<EOF
listen: 127.0.0.1:$PORT_TURNPIKE
upstreams:
  - {name: backend, targets: [{url: "http://127.0.0.1:$PORT_UPSTREAM"}]}
auth:
  key_secret: \${TURNPIKE_KEY_SECRET}
  keys_file: $file
consumers:
  - {name: c0}
routes:
  - {name: plain, paths: ["/plain"], upstream: backend}
EOF
  if ! key=$("$TURNPIKE_BIN" keys create --consumer c0 --config "$cfg" 2>"$LOGS/keys-create.log"); then
    warn "turnpike keys create failed ($(head -c 300 "$LOGS/keys-create.log"));" \
      "the key format is checked by the requests only"
    return 0
  fi
  [[ $key =~ ^tp_[0-9A-Za-z]{12}_[0-9A-Za-z]{43}$ ]] ||
    die "turnpike keys create made '${key:0:20}…', not tp_<12 base62>_<43 base62>: update bench/authgen.py"
  stored=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["keys"][0]["hash"])' "$file")
  ours=$(python3 "$ROOT/bench/authgen.py" hash "$CRED/key_secret" "$key")
  [[ $stored == "$ours" ]] ||
    die "turnpike keys create stored $stored, bench/authgen.py computes $ours for the same key"
  info "turnpike keys create: same key shape and hash as bench/authgen.py"
}

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
start_nginx_servers() {
  say "starting upstream nginx ($UPSTREAM_WORKERS worker) and nginx proxy ($WORKERS workers)"
  start_bg upstream nginx -p "$OUT/nginx/upstream" -e stderr -c "$CONF/upstream.nginx.conf" -g 'daemon off;'
  start_bg nginx nginx -p "$OUT/nginx/nginx" -e stderr -c "$CONF/nginx.conf" -g 'daemon off;'
  wait_port upstream "$PORT_UPSTREAM"
  wait_port nginx "$PORT_NGINX"
  check_body "http://127.0.0.1:$PORT_UPSTREAM/plain"
  check_body "http://127.0.0.1:$PORT_NGINX/plain"
}

start_turnpike() { # KEY CONFIG [SERVE_ARGS...]: (re)starts it; stores KEY.{startup_ms,idle_kib,start_hwm_kib}
  local key=$1 cfg=$2 t0 t1
  stop turnpike
  t0=$(date +%s%N)
  TURNPIKE_LOG=${TURNPIKE_LOG:-warn} start_bg turnpike "$TURNPIKE_BIN" serve --config "$cfg" "${@:3}"
  wait_port turnpike "$PORT_TURNPIKE"
  t1=$(date +%s%N)
  sleep 1   # let lazily started threads settle before reading idle memory
  put "$key.startup_ms" "$(((t1 - t0) / 1000000))"
  put "$key.idle_kib" "$(mem_kib turnpike VmRSS)"
  put "$key.start_hwm_kib" "$(mem_kib turnpike VmHWM)"
}

idle_cpu() { # KEY: CPU Turnpike uses while no request arrives, in ms per second
  local c0 c1
  c0=$(cpu_ticks turnpike)
  sleep "$IDLE_SECONDS"
  c1=$(cpu_ticks turnpike)
  put "$1.idle_cpu" "$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v s="$IDLE_SECONDS" \
    'BEGIN { printf "%.1f", d / hz * 1000 / s }')"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }

# Start-up time (median of START_RUNS starts), idle RSS, peak RSS while starting and idle CPU,
# for: no consumers or keys; KEYS consumers and keys without the file watcher; the same with the
# watcher (the default, and the process the throughput rounds then use).
scenario_memory() {
  local cfg key times args
  for key in nokeys keys_nowatch keys; do
    case $key in
      nokeys) cfg=$CONF/turnpike-nokeys.yaml args=() ;;
      keys_nowatch) cfg=$CONF/turnpike.yaml args=(--no-watch) ;;
      keys) cfg=$CONF/turnpike.yaml args=() ;;
    esac
    times=()
    for _ in $(seq "$START_RUNS"); do
      start_turnpike "$key" "$cfg" "${args[@]}"
      times+=("$(get "$key.startup_ms")")
    done
    put "$key.startup_ms" "$(printf '%s\n' "${times[@]}" | median)"
    idle_cpu "$key"
    # Read after the idle period: the allocator returns freed start-up memory with a delay.
    put "$key.idle_kib" "$(mem_kib turnpike VmRSS)"
    info "$key: start-up $(get "$key.startup_ms") ms (of ${times[*]}), idle RSS" \
      "$(kib_to_mib "$(get "$key.idle_kib")") MiB, peak while starting" \
      "$(kib_to_mib "$(get "$key.start_hwm_kib")") MiB, idle CPU $(get "$key.idle_cpu") ms/s"
  done
}

http_code() { # URL [CURL_ARGS...]
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${@:2}" "$1" || true
}

expect_code() { # WANT WHAT URL [CURL_ARGS...]
  local got
  got=$(http_code "${@:3}")
  [[ $got == "$1" ]] || die "$2: $3 answered $got, expected $1"
}

# Every route answers the upstream's body with its credential, and 401 without or with a bad one.
check_routes() {
  local base=http://127.0.0.1:$PORT_TURNPIKE bad_key bad_token first middle
  bad_key=${API_KEY%?}x; [[ $bad_key != "$API_KEY" ]] || bad_key=${API_KEY%?}y
  # A changed character inside the signature (the last one may only hold padding bits).
  local at=$((${#TOKEN} - 10)) c
  c=${TOKEN:at:1}; [[ $c == A ]] && c=B || c=A
  bad_token=${TOKEN:0:at}$c${TOKEN:at+1}
  check_body "$base/plain"
  check_body "$base/key" -H "x-api-key: $API_KEY"
  expect_code 401 "no key" "$base/key"
  expect_code 401 "wrong key secret" "$base/key" -H "x-api-key: $bad_key"
  check_body "$base/jwt" -H "Authorization: Bearer $TOKEN"
  expect_code 401 "no token" "$base/jwt"
  expect_code 401 "bad signature" "$base/jwt" -H "Authorization: Bearer $bad_token"
  expect_code 401 "a key on the JWT route" "$base/jwt" -H "x-api-key: $API_KEY"
  if ((JWT_TOKENS > 0)); then
    first=$(head -n1 "$CRED/tokens.txt")
    middle=$(sed -n "$((JWT_TOKENS / 2 + 1))p" "$CRED/tokens.txt")
    check_body "$base/jwt" -H "Authorization: Bearer $first"
    check_body "$base/jwt" -H "Authorization: Bearer $middle"
  fi
  info "every route answers '$BODY' with its credential; /key and /jwt answer 401 without"
}

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------
wrk_args_of() { # TARGET -> sets URL and ARGS
  case $1 in
    nginx) URL=http://127.0.0.1:$PORT_NGINX/plain ARGS=() ;;
    plain) URL=http://127.0.0.1:$PORT_TURNPIKE/plain ARGS=() ;;
    # Same request bytes as the jwt row (the 452-byte header travels to the upstream too),
    # so jwt / plain-bearer is the cost of verification alone.
    plain-bearer) URL=http://127.0.0.1:$PORT_TURNPIKE/plain ARGS=(-H "Authorization: Bearer $TOKEN") ;;
    key) URL=http://127.0.0.1:$PORT_TURNPIKE/key ARGS=(-H "x-api-key: $API_KEY") ;;
    jwt) URL=http://127.0.0.1:$PORT_TURNPIKE/jwt ARGS=(-H "Authorization: Bearer $TOKEN") ;;
    jwt-distinct) URL=http://127.0.0.1:$PORT_TURNPIKE/jwt ARGS=(-s "$CONF/tokens.lua") ;;
  esac
}

measure() { # TARGET ROUND: warm-up, then one wrk run with the target's CPU per request
  local t=$1 r=$2 proc cpu0 cpu1 URL ARGS
  proc=turnpike; [[ $t != nginx ]] || proc=nginx
  wrk_args_of "$t"
  WRK_TOKENS=$CRED/tokens.txt WRK_THREADS=$WRK_THREADS warm_up "$URL" "${ARGS[@]}"
  cpu0=$(cpu_ticks "$proc")
  WRK_TOKENS=$CRED/tokens.txt WRK_THREADS=$WRK_THREADS run_wrk "$t.r$r" "$URL" "${ARGS[@]}"
  cpu1=$(cpu_ticks "$proc")
  put "$t.r$r.cpu_us" "$(awk -v d="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v n="$(get "$t.r$r.requests")" \
    'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
  info "$t round $r: CPU $(get "$t.r$r.cpu_us") µs/request"
}

# Round r runs the targets rotated by r - 1, so no target is always first or last.
scenario_rounds() {
  local r i n=${#TARGETS[@]}
  for r in $(seq "$ROUNDS"); do
    say "round $r of $ROUNDS"
    for i in $(seq 0 $((n - 1))); do
      local t=${TARGETS[$(((i + r - 1) % n))]}
      step "$t round $r" measure "$t" "$r"
    done
  done
  put turnpike.hwm_kib "$(mem_kib turnpike VmHWM)"
  put turnpike.rss_kib "$(mem_kib turnpike VmRSS)"
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
mean_of() { # KEY-SUFFIX TARGET -> mean over rounds of TARGET.rN.SUFFIX (n/a if any is missing)
  local r vals=()
  for r in $(seq "$ROUNDS"); do vals+=("$(get "$2.r$r.$1")"); done
  printf '%s\n' "${vals[@]}" | awk -v d="${3:-1}" '
    $1 !~ /^[0-9.]+$/ { bad = 1 } { s += $1; n++ }
    END { if (bad || !n) print "n/a"; else printf "%." d "f\n", s / n }'
}

sum_of() { # SUFFIX TARGET
  local r vals=()
  for r in $(seq "$ROUNDS"); do vals+=("$(get "$2.r$r.$1")"); done
  printf '%s\n' "${vals[@]}" | awk '$1 !~ /^[0-9]+$/ { bad = 1 } { s += $1 }
    END { if (bad) print "n/a"; else print s }'
}

max_of() { # SUFFIX TARGET
  local r vals=()
  for r in $(seq "$ROUNDS"); do vals+=("$(get "$2.r$r.$1")"); done
  printf '%s\n' "${vals[@]}" | awk '$1 ~ /^[0-9.]+$/ && $1 + 0 >= m { m = $1 + 0; ok = 1 }
    END { if (ok) print m; else print "n/a" }'
}

per_round_ratios() { # A B -> "0.97, 0.95, 0.99" (A/B of each round's rps)
  local r out=()
  for r in $(seq "$ROUNDS"); do out+=("$(ratio "$(get "$1.r$r.rps")" "$(get "$2.r$r.rps")")"); done
  local IFS=, s; s="${out[*]}"; echo "${s//,/, }"
}

diff_of() { # A B -> A - B with 1 decimal
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"; else printf "%+.1f", a - b }'
}

mib() { local v; v=$(get "$1"); if [[ $v == n/a ]]; then echo n/a; else kib_to_mib "$v"; fi; }

report() {
  local t r table ratios memory extra version header rk rj rd rn rb cost_kib
  for t in "${TARGETS[@]}"; do
    put "$t.rps" "$(mean_of rps "$t" 0)"
  done
  rk=$(ratio "$(get key.rps)" "$(get plain.rps)")
  rj=$(ratio "$(get jwt.rps)" "$(get plain.rps)")
  rd=$(ratio "$(get jwt-distinct.rps)" "$(get plain.rps)")
  rn=$(ratio "$(get plain.rps)" "$(get nginx.rps)")
  rb=$(ratio "$(get jwt.rps)" "$(get plain-bearer.rps)")

  header="target"
  for r in $(seq "$ROUNDS"); do header+="|rps r$r"; done
  header+="|mean rps|p50 ms|p99 ms|CPU µs/req|errors|other CPU %"
  table=$(
    echo "$header"
    for t in "${TARGETS[@]}"; do
      printf '%s' "$(label_of "$t")"
      for r in $(seq "$ROUNDS"); do printf '|%s' "$(get "$t.r$r.rps")"; done
      printf '|%s|%s|%s|%s|%s|%s\n' "$(get "$t.rps")" "$(mean_of p50 "$t" 3)" \
        "$(mean_of p99 "$t" 3)" "$(mean_of cpu_us "$t" 1)" "$(sum_of errors "$t")" \
        "$(max_of other "$t")"
    done
  )
  ratios=$(
    echo "ratio|per round|of the means|target|verdict"
    echo "key_auth / no auth rps|$(per_round_ratios key plain)|$rk|>= 0.95|$(verdict "$rk" '>=' 0.95)"
    echo "JWT RS256 / no auth rps|$(per_round_ratios jwt plain)|$rj|>= 0.85|$(verdict "$rj" '>=' 0.85)"
    echo "JWT RS256 / no auth with the same request bytes|$(per_round_ratios jwt plain-bearer)|$rb|>= 0.85|$(verdict "$rb" '>=' 0.85)"
    if ((JWT_TOKENS > 0)); then
      echo "JWT, distinct tokens / no auth rps|$(per_round_ratios jwt-distinct plain)|$rd||"
    fi
    echo "Turnpike no auth / nginx rps|$(per_round_ratios plain nginx)|$rn||"
  )
  cost_kib=$(awk -v a="$(get keys.idle_kib)" -v b="$(get nokeys.idle_kib)" 'BEGIN {
    if (a !~ /^[0-9]+$/ || b !~ /^[0-9]+$/) print "n/a"; else print a - b }')
  memory=$(
    echo "Turnpike config|start-up ms|idle RSS MiB|peak RSS while starting MiB|idle CPU ms/s"
    # idle RSS: VmRSS 1 + IDLE_SECONDS s after listening; peak: VmHWM 1 s after listening
    for k in nokeys keys_nowatch keys; do
      case $k in
        nokeys) printf 'the three routes, no consumers or keys' ;;
        keys_nowatch) printf '+ %s consumers and keys, serve --no-watch' "$KEYS" ;;
        keys) printf '+ %s consumers and keys, watching config and keys file (default)' "$KEYS" ;;
      esac
      printf '|%s|%s|%s|%s\n' "$(get "$k.startup_ms")" "$(mib "$k.idle_kib")" \
        "$(mib "$k.start_hwm_kib")" "$(get "$k.idle_cpu")"
    done
  )
  extra=$(
    echo "CPU µs/req is the CPU of the target's processes during the measured run divided by its requests; over /plain: key_auth $(diff_of "$(mean_of cpu_us key)" "$(mean_of cpu_us plain)") µs, JWT $(diff_of "$(mean_of cpu_us jwt)" "$(mean_of cpu_us plain)") µs$( ((JWT_TOKENS == 0)) || echo ", JWT with distinct tokens $(diff_of "$(mean_of cpu_us jwt-distinct)" "$(mean_of cpu_us plain)") µs")."
    echo "p50, p99 and CPU are means over the rounds, errors (non-2xx and socket errors) their sum, other CPU % (machine CPU used outside the benchmark) the worst round."
    echo "Memory of $KEYS keys and consumers: $(awk -v k="$cost_kib" -v n="$KEYS" 'BEGIN { if (k !~ /^-?[0-9]+$/) print "n/a"; else printf "%.1f MiB idle RSS (%.0f bytes per key)", k / 1024, k * 1024 / n }') with the default file watcher; after all rounds Turnpike's RSS was $(mib turnpike.rss_kib) MiB (peak $(mib turnpike.hwm_kib) MiB)."
    echo "Files: config $(du -h "$CONF/turnpike.yaml" | cut -f1) ($KEYS consumers), keys file $(du -h "$CRED/keys.json" | cut -f1); the token is $(wc -c <"$CRED/token.jwt" | tr -d ' ') bytes."
    if ((JWT_TOKENS > 0)); then
      echo "Distinct tokens: wrk's Lua script (bench/out/auth/conf/tokens.lua) cycles through $JWT_TOKENS tokens, each coming back after $JWT_TOKENS requests, against a verified-token cache of 10,000 entries ($(awk -v n="$JWT_TOKENS" 'BEGIN { if (n <= 10000) print "they all fit: cache hits"
        else printf "at most about %.0f%% cache hits: a full cache evicts the entry its hash map iterates first, so about 10,000 tokens stay cached", 100 * 10000 / n }')); the Lua request() call costs wrk some CPU the other rows do not spend."
    fi
    if ((${#FAILED[@]})); then echo "Failed steps (numbers shown as n/a): $(failed_list)."; fi
  )

  say "results"
  printf '\n%s\n\n%s\n\n%s\n\n%s\n' "$(tty_table <<<"$table")" "$(tty_table <<<"$ratios")" \
    "$(tty_table <<<"$memory")" "$extra"

  version=$("$TURNPIKE_BIN" --version 2>/dev/null | head -n1) || version=""
  {
    echo "## Auth benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) cores, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'); ${version:-turnpike} ($TURNPIKE_BIN)."
    echo "CPU busy before the run: $(get busy)%."
    echo "DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WORKERS=$WORKERS UPSTREAM_WORKERS=$UPSTREAM_WORKERS ROUNDS=$ROUNDS KEYS=$KEYS JWT_TOKENS=$JWT_TOKENS PEER_HEADERS=$PEER_HEADERS."
    echo
    md_table <<<"$table"
    echo
    md_table <<<"$ratios"
    echo
    md_table <<<"$memory"
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
  # One run at a time: a second one would delete this one's files (and pid files) under OUT.
  exec {lock}>"${TMPDIR:-/tmp}/turnpike-bench-auth.lock"
  flock -n "$lock" || die "another bench/auth.sh is running on this machine; wait for it to finish"
  ports_free
  rm -rf "$OUT"
  mkdir -p "$RUN" "$LOGS" "$RES" "$CONF" "$CRED"

  say "1. tools"; install_tools
  say "2. turnpike"; build_turnpike
  say "3. credentials and configs"
  ports_free
  make_credentials
  write_nginx_configs
  write_turnpike_config "$CONF/turnpike.yaml" with-keys
  write_turnpike_config "$CONF/turnpike-nokeys.yaml" no-keys
  write_wrk_script
  check_key_format

  say "4. servers"
  busy_check
  start_nginx_servers
  say "5. Turnpike start-up and memory, with and without $KEYS keys"
  scenario_memory          # leaves Turnpike running with the full config
  check_routes

  say "6. throughput: $ROUNDS rounds of ${TARGETS[*]} (wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, ${WARMUP}s warm-up)"
  scenario_rounds
  stop turnpike

  report
  ((${#FAILED[@]} == 0))
}

main "$@"
