#!/usr/bin/env bash
# Property tests of the admin API driven from its own OpenAPI document (schemathesis):
# starts a real `turnpike serve` with an admin section (SQLite store, bootstrap token from
# TURNPIKE_ADMIN_TOKEN), an OAuth server and a TLS listener (so every entity kind can be
# written), then lets schemathesis generate requests for every operation and check that
# none gets a 5xx and every response matches its documented schema.
#
# Usage: .ci/schemathesis.sh [path/to/turnpike]   (default: target/debug/turnpike)
# Bounded to a few minutes on two cores: SCHEMATHESIS_EXAMPLES examples per operation
# (default 50, about 40 s on two cores), 170 s overall. SCHEMATHESIS_ARGS adds options (e.g. `--report har`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/turnpike}"
examples="${SCHEMATHESIS_EXAMPLES:-50}"
work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
proxy_port="$(free_port)"; tls_port="$(free_port)"; admin_port="$(free_port)"

# Throwaway key material: the OAuth signing key and the TLS listener's certificate.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ec.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/ec.pem" -out "$work/oauth.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$work/tls-key.pem" -out "$work/tls.pem" 2>/dev/null

cat >"$work/turnpike.yaml" <<EOF
listen: 127.0.0.1:$proxy_port
listeners:
  - name: tls
    address: 127.0.0.1:$tls_port
    tls:
      certificates: [{cert: $work/tls.pem, key: $work/tls-key.pem}]
upstreams:
  - name: backend
    targets: [{url: "http://127.0.0.1:9"}]
routes:
  - {name: everything, paths: ["/"], upstream: backend}
auth:
  key_secret: schemathesis-key-secret-0123456789
oauth:
  issuer: https://gateway.example.test
  signing_keys: [{kid: k1, algorithm: ES256, key_file: $work/oauth.pem}]
admin:
  listen: 127.0.0.1:$admin_port
  store: $work/turnpike.db
EOF

token="$(python3 -c 'import secrets, string
pick = lambda n: "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))
print(f"tpa_{pick(12)}_{pick(43)}")')"
TURNPIKE_ADMIN_TOKEN="$token" "$bin" serve --config "$work/turnpike.yaml" --no-watch \
    >"$work/serve.log" 2>&1 &
server=$!
base="http://127.0.0.1:$admin_port"
for _ in $(seq 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done

status=0
# From the scratch directory: schemathesis leaves a `.schemathesis/` cache behind.
(cd "$work" && exec timeout 170 schemathesis --no-color run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$examples" --workers "${SCHEMATHESIS_WORKERS:-1}" --seed 1 \
    --request-timeout 10 --generation-database none ${SCHEMATHESIS_ARGS:-}) || status=$?
if [ "$status" -ne 0 ]; then
    echo "== schemathesis failed ($status); the gateway's log:"
    tail -n 50 "$work/serve.log"
fi
exit "$status"
