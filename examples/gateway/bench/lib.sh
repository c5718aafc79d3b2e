# Helpers shared by load.sh, abuse.sh and soak.sh (sourced, not run).
#
# The sourcing script sets `set -euo pipefail` and BENCH_NAME (its name in log lines), then
# calls bench_init. Every process started through these helpers is stopped on exit (Ctrl-C
# included) and the temp dir $tmp is removed unless KEEP_TMP=1.
#
# What it provides:
#   log, die                    messages on stderr
#   bench_init                  temp dir $tmp, the cleanup trap, $bench_dir and $workspace
#   install_tools               wrk and nginx-light (apt-get when missing); sets $NGINX
#   raise_nofile N              raises this shell's open-file limit (children inherit it)
#   free_port, wait_for_port    local ports for the servers the scripts start
#   start_nginx                 an nginx from a template of this directory, in the foreground
#   make_token                  an RS256 key pair and a bearer token for the secure config
#   write_gateway_config        an agentgw YAML with one llm route (and the security stack)
#   start_gateway               agentgw on that config; sets url[NAME] and server_pid[NAME]
#   build_gateway, build_examples   release builds (SKIP_BUILD=1, GATEWAY_BIN=PATH skip them)
#   write_wrk_script, run_wrk, to_us   wrk with the chat request; RPS, P50, P99, ERRORS
#   cpu_ticks, rss_kib          CPU time and resident memory of a server process
#   check_answer                one curl request that must be answered with a chat completion

BENCH_NAME=${BENCH_NAME:-bench}
KEEP_TMP=${KEEP_TMP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
GATEWAY_BIN=${GATEWAY_BIN:-}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
# Extra top-level YAML appended to every gateway config, e.g. GATEWAY_YAML=$'server:\n  headerReadTimeout: 5s'.
GATEWAY_YAML=${GATEWAY_YAML:-}
# 1: the gateway speaks HTTP/2 without TLS (h2c) to its upstream (`backend.http2: true`).
UPSTREAM_HTTP2=${UPSTREAM_HTTP2:-0}
NGINX_WORKERS=${NGINX_WORKERS:-auto}

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace=$(cd "$bench_dir/../../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$workspace/target}

# --- processes and cleanup --------------------------------------------------------------------

pids=()
# The process serving each target (nginx masters: their workers are counted with them).
declare -A server_pid
# The URL of each target.
declare -A url

bench_init() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentgw-$BENCH_NAME.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

bench_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}

# Stops one process started by this script (and forgets it).
stop_pid() { # pid [signal]
    local pid=$1 signal=${2:-TERM} kept=()
    kill -"$signal" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    pids=("${kept[@]}")
}

# --- tools ------------------------------------------------------------------------------------

install_tools() {
    local nginx_bin
    nginx_bin=$(command -v nginx || true)
    [[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
    if command -v wrk >/dev/null && [[ -n $nginx_bin ]]; then
        NGINX=$nginx_bin
        return
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "wrk or nginx is missing and I am not root: apt-get install -y wrk nginx-light"
        sudo=(sudo)
    fi
    log "installing wrk and nginx-light"
    "${sudo[@]}" apt-get update -qq
    # RUNLEVEL=1 keeps the package scripts from starting a system nginx on port 80.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq wrk nginx-light >/dev/null
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [[ -x $NGINX ]] || die "nginx not found after installing nginx-light"
    command -v wrk >/dev/null || die "wrk not found after installing it"
}

# Raises the soft (and, with CAP_SYS_RESOURCE, the hard) open-file limit of this shell towards
# $1; the processes started afterwards inherit it. Returns non-zero, with the limit reached in
# $REPLY, when it stays below $1 (a container without CAP_SYS_RESOURCE cannot raise its hard
# limit).
raise_nofile() { # wanted
    local wanted=$1 hard
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited ]] && (( hard < wanted )); then
        ulimit -Hn "$wanted" 2>/dev/null || true
        hard=$(ulimit -Hn)
    fi
    if [[ $hard == unlimited ]] || (( hard >= wanted )); then
        ulimit -Sn "$wanted"
    else
        ulimit -Sn "$hard"
    fi
    REPLY=$(ulimit -Sn)
    [[ $REPLY == unlimited ]] || (( REPLY >= wanted ))
}

# --- ports and servers ------------------------------------------------------------------------

# A port nothing listens on and that this script has not handed out yet (result in $REPLY).
used_ports=" "
free_port() {
    local port
    while :; do
        # Below the kernel's ephemeral range (32768-60999), so that no outgoing connection in
        # TIME_WAIT holds the port a listener is about to bind.
        port=$(( (RANDOM * 32768 + RANDOM) % 12000 + 20000 ))
        [[ $used_ports == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            used_ports+="$port "
            REPLY=$port
            return
        fi
    done
}

# Waits until 127.0.0.1:$1 accepts connections, or fails naming $2 and its log $3.
wait_for_port() {
    local port=$1 name=$2 logfile=$3 pid=$4
    for _ in $(seq 1 400); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "$name exited before listening on 127.0.0.1:$port"
        fi
        sleep 0.05
    done
    tail -n 30 "$logfile" >&2 || true
    die "$name did not listen on 127.0.0.1:$port within 20 s"
}

render() { # template output, then KEY=VALUE pairs for @KEY@ placeholders
    local template=$1 output=$2
    shift 2
    local text
    text=$(<"$template")
    for pair in "$@"; do
        text=${text//@${pair%%=*}@/${pair#*=}}
    done
    printf '%s\n' "$text" >"$output"
}

start_nginx() { # name template port [upstream port]
    local name=$1 template=$2 port=$3 upstream_port=${4:-0} user=""
    [[ $(id -u) -eq 0 ]] && user="user root root;"
    render "$template" "$tmp/$name.conf" \
        "PREFIX=$tmp" "PORT=$port" "UPSTREAM_PORT=$upstream_port" \
        "USER=$user" "WORKERS=$NGINX_WORKERS"
    "$NGINX" -t -q -p "$tmp" -e "$tmp/$name-error.log" -c "$tmp/$name.conf" -g 'daemon off;' \
        || die "invalid nginx config $tmp/$name.conf"
    "$NGINX" -p "$tmp" -e "$tmp/$name-error.log" -c "$tmp/$name.conf" -g 'daemon off;' \
        >"$tmp/$name.out" 2>&1 &
    pids+=($!)
    server_pid[$name]=$!
    wait_for_port "$port" "nginx $name" "$tmp/$name-error.log" "$!"
}

# --- builds -----------------------------------------------------------------------------------

# Sets gateway_bin: GATEWAY_BIN, or target/release/agentgw (built unless SKIP_BUILD=1).
build_gateway() {
    gateway_bin=$GATEWAY_BIN
    if [[ -z $gateway_bin ]]; then
        if [[ $SKIP_BUILD != 1 ]]; then
            log "building the gateway (cargo build --release -p agentgw-gateway)"
            (cd "$workspace" && cargo build --release -p agentgw-gateway) || die "the gateway does not build"
        fi
        gateway_bin="$target_dir/release/agentgw"
    fi
    [[ -x $gateway_bin ]] || die "$gateway_bin is missing"
}

# Builds the gateway crate's examples named as arguments (unless SKIP_BUILD=1); each is then
# $target_dir/release/examples/NAME.
build_examples() { # name...
    local args=() name
    for name in "$@"; do
        args+=(--example "$name")
    done
    if [[ $SKIP_BUILD != 1 ]]; then
        log "building $* (cargo build --release -p agentgw-gateway ${args[*]})"
        (cd "$workspace" && cargo build --release -p agentgw-gateway "${args[@]}") || die "the examples do not build"
    fi
    for name in "$@"; do
        [[ -x $target_dir/release/examples/$name ]] || die "$target_dir/release/examples/$name is missing"
    done
}

# --- the security stack: an RS256 key made for this run and a bearer token --------------------

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# Writes $tmp/jwt.key and $tmp/jwt.pub and sets TOKEN (valid for a day, role "user").
make_token() {
    command -v openssl >/dev/null || die "openssl is needed for the bearer token"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/jwt.key" 2>/dev/null
    openssl pkey -in "$tmp/jwt.key" -pubout -out "$tmp/jwt.pub"
    local header payload exp
    exp=$(( $(date +%s) + 86400 ))
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"iss":"https://auth.bench.example","aud":"agentgw-bench","sub":"bench","role":"user","exp":%s}' "$exp" | b64url)
    TOKEN="$header.$payload.$(printf '%s' "$header.$payload" | openssl dgst -sha256 -sign "$tmp/jwt.key" -binary | b64url)"
}

# The policies of the secure configuration, one block per layer of the full stack: JWT (RS256,
# the key of make_token), a CEL rule on a claim and the body, a request prompt guard (Reject) and
# response masking (builtin PII recognizers).
secure_policies() {
    cat <<YAML
    policies:
      traffic:
        jwtAuthentication:
          mode: Strict
          providers:
            - issuer: https://auth.bench.example
              audiences: [agentgw-bench]
              jwks: {local: {file: $tmp/jwt.pub}}
      rbac:
        policy:
          matchExpressions:
            - 'jwt.role == "user" && request.body.model in ["gpt-4o-mini", "gpt-4o"]'
      ai:
        promptGuard:
          request:
            - regex:
                action: Reject
                matches:
                  - {name: prompt-injection, pattern: "(?i)ignore.*previous.*instructions"}
                builtins: [CREDIT_CARD, SSN]
          response:
            - regex:
                action: Mask
                builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN]
YAML
}

# Writes $tmp/NAME.yaml: the proxy on port $PORT, metrics and health on, one llm route
# `pathPrefix: /` to upstream, with the security stack when secure is non-empty.
write_gateway_config() { # name port upstream_url [secure]
    local name=$1 port=$2 upstream=$3 secure=${4:-}
    {
        echo "listen: 127.0.0.1:$port"
        # Metrics and health on, as in a deployment: every request is counted and timed.
        free_port; echo "metrics: 127.0.0.1:$REPLY"
        free_port; echo "health: 127.0.0.1:$REPLY"
        [[ -n $GATEWAY_YAML ]] && printf '%s\n' "$GATEWAY_YAML"
        echo "routes:"
        echo "  - name: bench"
        echo "    pathPrefix: /"
        echo "    kind: llm"
        if [[ $UPSTREAM_HTTP2 == 1 ]]; then
            echo "    backend: {url: \"$upstream\", timeout: 30s, http2: true}"
        else
            echo "    backend: {url: \"$upstream\", timeout: 30s}"
        fi
        [[ -n $secure ]] && secure_policies
    } >"$tmp/$name.yaml"
    "$gateway_bin" --check-config "$tmp/$name.yaml" >/dev/null || die "invalid $tmp/$name.yaml"
}

# Starts agentgw as target NAME in front of upstream_url (needs build_gateway; make_token first
# for secure). Sets url[NAME] (the chat completions URL) and server_pid[NAME].
start_gateway() { # name upstream_url [secure]
    local name=$1 upstream=$2 secure=${3:-} port
    free_port; port=$REPLY
    write_gateway_config "$name" "$port" "$upstream" "$secure"
    # shellcheck disable=SC2086 # GATEWAY_ARGS is a list of arguments
    RUST_LOG=${RUST_LOG:-warn} "$gateway_bin" --config "$tmp/$name.yaml" $GATEWAY_ARGS >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    server_pid[$name]=$!
    wait_for_port "$port" "$name" "$tmp/$name.log" "$!"
    url[$name]="http://127.0.0.1:$port/v1/chat/completions"
}

# --- wrk --------------------------------------------------------------------------------------

request_body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you today?"}]}'
TOKEN=bench-key

# Writes $tmp/chat.lua: POST request_body with the bearer TOKEN (call after make_token).
write_wrk_script() {
    cat >"$tmp/chat.lua" <<LUA
-- POST a small chat completion request on every call (the token only matters to the secure stack).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '$request_body'
LUA
}

# Latency token from wrk (e.g. 812.00us, 1.20ms, 2.00s) in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60000000;
        else if (v ~ /s$/) m = 1000000; else m = 1
        printf "%.0f", n * m
    }'
}

# Runs wrk; sets RPS, REQUESTS, P50, P99 (microseconds) and ERRORS (non-2xx + socket errors).
run_wrk() { # name url connections duration
    local name=$1 target_url=$2 conns=$3 duration=$4 threads=${THREADS:-2} out
    (( threads > conns )) && threads=$conns
    out="$tmp/wrk-$name-$conns.txt"
    wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$tmp/chat.lua" "$target_url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed against $name"; }
    RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    REQUESTS=$(awk '/requests in/ { print $1 }' "$out")
    P50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    P99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    ERRORS=$(awk '
        /Non-2xx or 3xx responses:/ { e += $NF }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) e += $i }
        END { printf "%.0f\n", e }' "$out")
    [[ -n $RPS && -n $P50 && -n $P99 ]] || { cat "$out" >&2; die "could not parse wrk output for $name"; }
}

# --- process measurements ---------------------------------------------------------------------

# CPU time (user + system, clock ticks) of a process and its children (nginx workers). The
# process's line covers all its threads.
cpu_ticks() { # pid
    local total=0 pid fields
    for pid in "$1" $(pgrep -P "$1" || true); do
        read -r -a fields <"/proc/$pid/stat" || continue
        # Fields 14 and 15: utime and stime (the name in field 2 has no spaces here).
        total=$(( total + fields[13] + fields[14] ))
    done
    echo "$total"
}

# Resident memory of a process in KiB (VmRSS), or nothing when it is gone.
rss_kib() { # pid
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# Open file descriptors of a process (its sockets, mostly).
open_fds() { # pid
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

check_answer() { # name url
    local status
    status=$(curl -s -o "$tmp/check-$1.json" -w '%{http_code}' -X POST -H "authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' --data-binary "$request_body" "$2" || true)
    [[ $status == 200 ]] || { cat "$tmp/check-$1.json" >&2 2>/dev/null || true; die "$1 answered HTTP $status instead of 200"; }
    grep -q '"chat.completion"' "$tmp/check-$1.json" || die "$1 did not answer a chat completion"
}
