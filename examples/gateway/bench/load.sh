#!/usr/bin/env bash
# Load test of the agentgw example gateway against nginx, on one machine.
#
# Four targets answer the same POST /v1/chat/completions:
#   (a) direct       nginx returning a fixed chat completion (nginx-upstream.conf)
#   (b) nginx-proxy  nginx proxy_pass to (a) over keep-alive connections (nginx-proxy.conf)
#   (c) agentgw      target/release/agentgw with one route to (a) and no policies
#   (d) agentgw-secure  the same with the full security stack: JWT (RS256) authentication, a
#                    CEL rule on a claim and the body, a request prompt guard (Reject) and
#                    response masking (builtin PII recognizers)
# each driven by wrk at 1, 32 and 256 connections, ROUNDS times (targets alternate within a
# round). Prints a markdown table per round and the ratios of every round.
#
# Environment:
#   DURATION=10s         wrk duration per run
#   THREADS=2            wrk threads (capped at the connection count)
#   CONNECTIONS="1 32 256"
#   ROUNDS=1             rounds of every target at every connection count
#   WARMUP=2s            unrecorded wrk run before each target's first run (0 to skip)
#   NGINX_WORKERS=auto   worker_processes of both nginx instances
#   TARGETS="direct nginx-proxy agentgw agentgw-secure"
#   SKIP_GATEWAY=1       measure only (a) and (b), e.g. while the gateway does not build
#   SKIP_BUILD=1         use an existing target/release/agentgw instead of building it
#   GATEWAY_BIN=PATH     measure this agentgw binary (nothing is built)
#   KEEP_TMP=1           keep the temp dir (configs, logs, raw wrk outputs)
#   GATEWAY_ARGS=""      extra agentgw arguments, e.g. "--runtime multi-thread"
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-"1 32 256"}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2s}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
TARGETS=${TARGETS:-"direct nginx-proxy agentgw agentgw-secure"}
SKIP_GATEWAY=${SKIP_GATEWAY:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
GATEWAY_BIN=${GATEWAY_BIN:-}
[[ $SKIP_GATEWAY == 1 ]] && TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -v '^agentgw' | tr '\n' ' ')

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace=$(cd "$bench_dir/../../.." && pwd)

log() { printf '[load.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

# --- processes and cleanup --------------------------------------------------------------------

pids=()
# The process serving each target (nginx masters: their workers are counted with them).
declare -A server_pid
tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentgw-bench.XXXXXX")

cleanup() {
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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
    for _ in $(seq 1 200); do
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
    die "$name did not listen on 127.0.0.1:$port within 10 s"
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

# --- wrk --------------------------------------------------------------------------------------

# --- the bearer token of agentgw-secure: RS256, signed with a key made for this run --------------

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
make_token() {
    command -v openssl >/dev/null || die "openssl is needed for the agentgw-secure token"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/jwt.key" 2>/dev/null
    openssl pkey -in "$tmp/jwt.key" -pubout -out "$tmp/jwt.pub"
    local header payload exp
    exp=$(( $(date +%s) + 86400 ))
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"iss":"https://auth.bench.example","aud":"agentgw-bench","sub":"bench","role":"user","exp":%s}' "$exp" | b64url)
    TOKEN="$header.$payload.$(printf '%s' "$header.$payload" | openssl dgst -sha256 -sign "$tmp/jwt.key" -binary | b64url)"
}
TOKEN=bench-key
[[ " $TARGETS " == *" agentgw-secure "* ]] && make_token

request_body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you today?"}]}'
cat >"$tmp/chat.lua" <<LUA
-- POST a small chat completion request on every call (the token only matters to agentgw-secure).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '$request_body'
LUA
# Latency token from wrk (e.g. 812.00us, 1.20ms, 2.00s) in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60000000;
        else if (v ~ /s$/) m = 1000000; else m = 1
        printf "%.0f", n * m
    }'
}

# Runs wrk; sets RPS, P50, P99 (microseconds) and ERRORS (non-2xx + socket errors).
run_wrk() { # name url connections duration
    local name=$1 url=$2 conns=$3 duration=$4 threads=$THREADS out
    (( threads > conns )) && threads=$conns
    out="$tmp/wrk-$name-$conns.txt"
    wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$tmp/chat.lua" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed against $name"; }
    RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    REQUESTS=$(awk '/requests in/ { print $1 }' "$out")
    P50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    P99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    ERRORS=$(awk '
        /Non-2xx or 3xx responses:/ { e += $NF }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) e += $i }
        END { print e + 0 }' "$out")
    [[ -n $RPS && -n $P50 && -n $P99 ]] || { cat "$out" >&2; die "could not parse wrk output for $name"; }
}

# CPU time (user + system, clock ticks) of a process and its children (nginx workers).
cpu_ticks() { # pid
    local total=0 pid fields
    for pid in "$1" $(pgrep -P "$1" || true); do
        read -r -a fields <"/proc/$pid/stat" || continue
        # Fields 14 and 15: utime and stime (the name in field 2 has no spaces here).
        total=$(( total + fields[13] + fields[14] ))
    done
    echo "$total"
}

check_answer() { # name url
    local status
    status=$(curl -s -o "$tmp/check-$1.json" -w '%{http_code}' -X POST -H "authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' --data-binary "$request_body" "$2" || true)
    [[ $status == 200 ]] || { cat "$tmp/check-$1.json" >&2 2>/dev/null || true; die "$1 answered HTTP $status instead of 200"; }
    grep -q '"chat.completion"' "$tmp/check-$1.json" || die "$1 did not answer a chat completion"
}

# --- main -------------------------------------------------------------------------------------

install_tools
command -v curl >/dev/null || die "curl is needed for the sanity checks"

gateway_bin=$GATEWAY_BIN
if [[ -z $gateway_bin && " $TARGETS " == *" agentgw"* ]]; then
    target_dir=${CARGO_TARGET_DIR:-$workspace/target}
    if [[ $SKIP_BUILD != 1 ]]; then
        log "building the gateway (cargo build --release -p agentgw-gateway)"
        (cd "$workspace" && cargo build --release -p agentgw-gateway) || die "the gateway does not build (SKIP_GATEWAY=1 measures nginx only)"
    fi
    gateway_bin="$target_dir/release/agentgw"
fi
[[ -z $gateway_bin || -x $gateway_bin ]] || die "$gateway_bin is missing"

free_port; upstream_port=$REPLY
free_port; proxy_port=$REPLY
start_nginx upstream "$bench_dir/nginx-upstream.conf" "$upstream_port"
start_nginx proxy "$bench_dir/nginx-proxy.conf" "$proxy_port" "$upstream_port"

path=/v1/chat/completions
targets=()
declare -A url=(
    [direct]="http://127.0.0.1:$upstream_port$path"
    [nginx-proxy]="http://127.0.0.1:$proxy_port$path"
)
server_pid[direct]=${server_pid[upstream]}
server_pid[nginx-proxy]=${server_pid[proxy]}

# The policies of agentgw-secure, one block per layer of the full stack.
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

start_gateway() { # name [secure]
    local name=$1 secure=${2:-} port
    free_port; port=$REPLY
    {
        echo "listen: 127.0.0.1:$port"
        # Metrics and health on, as in a deployment: every request is counted and timed.
        free_port; echo "metrics: 127.0.0.1:$REPLY"
        free_port; echo "health: 127.0.0.1:$REPLY"
        echo "routes:"
        echo "  - name: bench"
        echo "    pathPrefix: /"
        echo "    kind: llm"
        echo "    backend: {url: \"http://127.0.0.1:$upstream_port\", timeout: 30s}"
        [[ -n $secure ]] && secure_policies
    } >"$tmp/$name.yaml"
    "$gateway_bin" --check-config "$tmp/$name.yaml" >/dev/null || die "invalid $tmp/$name.yaml"
    # shellcheck disable=SC2086 # GATEWAY_ARGS is a list of arguments
    RUST_LOG=${RUST_LOG:-warn} "$gateway_bin" --config "$tmp/$name.yaml" $GATEWAY_ARGS >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    server_pid[$name]=$!
    wait_for_port "$port" "$name" "$tmp/$name.log" "$!"
    url[$name]="http://127.0.0.1:$port$path"
}

for target in $TARGETS; do
    case $target in
        direct | nginx-proxy) ;;
        agentgw) start_gateway agentgw ;;
        agentgw-secure) start_gateway agentgw-secure secure ;;
        *) die "unknown target $target (TARGETS: direct nginx-proxy agentgw agentgw-secure)" ;;
    esac
    targets+=("$target")
    check_answer "$target" "${url[$target]}"
done

tick=$(getconf CLK_TCK)
declare -A rps p50 p99 errors cpu
for target in "${targets[@]}"; do
    if [[ $WARMUP != 0 ]]; then
        log "warming up $target ($WARMUP)"
        run_wrk "$target-warmup" "${url[$target]}" 32 "$WARMUP"
    fi
done
for round in $(seq 1 "$ROUNDS"); do
    for conns in $CONNECTIONS; do
        for target in "${targets[@]}"; do
            log "round $round: $target, $conns connections, $DURATION"
            before=$(cpu_ticks "${server_pid[$target]}")
            run_wrk "$target-$round" "${url[$target]}" "$conns" "$DURATION"
            after=$(cpu_ticks "${server_pid[$target]}")
            key="$round,$target,$conns"
            cpu[$key]=$(awk -v t=$(( after - before )) -v k="$tick" -v r="$REQUESTS" \
                'BEGIN { printf "%.1f", (r > 0 ? t / k * 1e6 / r : 0) }')
            rps[$key]=$RPS
            p50[$key]=$P50
            p99[$key]=$P99
            errors[$key]=$ERRORS
        done
    done
done

ratio() { # round target conns: req/s of target / req/s of nginx-proxy
    local g=${rps[$1,$2,$3]:-} n=${rps[$1,nginx-proxy,$3]:-}
    [[ -n $g && -n $n ]] || { printf 'n/a'; return; }
    awk -v g="$g" -v n="$n" 'BEGIN { printf "%.2f", (n > 0 ? g / n : 0) }'
}

echo
echo "POST $path, wrk -t$THREADS -d$DURATION, $(nproc) CPUs, agentgw ${GATEWAY_ARGS:-(default runtime)}, nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $(date -u +%Y-%m-%dT%H:%MZ)"
for round in $(seq 1 "$ROUNDS"); do
    echo
    echo "Round $round: req/s, p50 and p99 latency (us), CPU time of the process under test per request (user + system, us):"
    echo
    header="| conns |"
    rule="|---:|"
    for target in "${targets[@]}"; do
        header+=" $target req/s | p50 | p99 | CPU/req |"
        rule+="---:|---:|---:|---:|"
    done
    for target in agentgw agentgw-secure; do
        [[ -n ${url[$target]:-} ]] || continue
        header+=" $target / nginx-proxy |"
        rule+="---:|"
    done
    echo "$header"
    echo "$rule"
    for conns in $CONNECTIONS; do
        row="| $conns |"
        for target in "${targets[@]}"; do
            key="$round,$target,$conns"
            row+=" ${rps[$key]} | ${p50[$key]} | ${p99[$key]} | ${cpu[$key]} |"
        done
        for target in agentgw agentgw-secure; do
            [[ -n ${url[$target]:-} ]] || continue
            row+=" **$(ratio "$round" "$target" "$conns")** |"
        done
        echo "$row"
    done
done

if (( ROUNDS > 1 )); then
    echo
    echo "Ratios to nginx-proxy req/s, every round:"
    echo
    for target in agentgw agentgw-secure; do
        [[ -n ${url[$target]:-} ]] || continue
        for conns in $CONNECTIONS; do
            list=""
            for round in $(seq 1 "$ROUNDS"); do
                list+="${list:+, }$(ratio "$round" "$target" "$conns")"
            done
            echo "- $target at $conns connections: $list"
        done
    done
fi

failed=0
for key in "${!errors[@]}"; do
    if (( ${errors[$key]} > 0 )); then
        log "warning: run $key (round,target,connections) had ${errors[$key]} errors or non-2xx answers (see KEEP_TMP=1)"
        failed=1
    fi
done
exit "$failed"
