#!/usr/bin/env bash
# Abuse test of the agentgw example gateway: normal traffic while slow clients hold connections.
#
# nginx (nginx-upstream.conf) answers a fixed chat completion; agentgw forwards to it (TARGET:
# the bare route, or agentgw-secure with JWT + CEL + prompt guards). Each round runs wrk with
# normal traffic three times: unattacked, attacked (while the `slowloris` example holds
# SLOW_CONNECTIONS connections with half-sent requests, one more byte every SLOW_INTERVAL,
# reconnecting whenever the gateway cuts one), and unattacked again. Prints req/s, p50, p99 and
# errors (non-2xx answers and socket errors) of each run, what the slow clients saw (open
# connections, how many the gateway cut and after how long), and the gateway's open file
# descriptors; then the verdict: attacked p99 <= 2x unattacked p99, and 0 errors.
#
# Environment:
#   DURATION=30s          wrk duration of each run
#   CONNECTIONS=32        wrk connections (normal traffic)
#   THREADS=2             wrk threads
#   WARMUP=3s             unrecorded wrk run first (0 to skip)
#   ROUNDS=1              rounds of unattacked / attacked / unattacked
#   SLOW_CONNECTIONS=1000 slow client connections held during the attacked run
#   SLOW_INTERVAL=3s      time between two bytes on a slow connection
#   SLOW_MODE=headers     headers: the request head is never finished (header read timeout);
#                         body: a whole head with Content-Length: 1000000 (and, for
#                         agentgw-secure, the bearer token), then the body a byte at a time
#                         (request body timeout)
#   SETTLE=15s            how long the slow clients run before the attacked wrk run starts (past
#                         the gateway's header read timeout, so cuts and reconnects are part of
#                         the attack)
#   TARGET=agentgw        agentgw (one route, no policies) or agentgw-secure (the security stack)
#   SKIP_BUILD=1          use the existing release binaries instead of building them
#   GATEWAY_BIN=PATH      the agentgw binary to measure (nothing is built for it)
#   SLOWLORIS_BIN=PATH    the slowloris binary (nothing is built for it)
#   GATEWAY_ARGS=""       extra agentgw arguments
#   GATEWAY_YAML=""       extra top-level YAML for the gateway config, e.g. a server: block
#   KEEP_TMP=1            keep the temp dir (configs, logs, raw wrk and slowloris outputs)
# Exits non-zero when a verdict fails.
set -euo pipefail

DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
SLOW_CONNECTIONS=${SLOW_CONNECTIONS:-1000}
SLOW_INTERVAL=${SLOW_INTERVAL:-3s}
SLOW_MODE=${SLOW_MODE:-headers}
SETTLE=${SETTLE:-15s}
TARGET=${TARGET:-agentgw}
SLOWLORIS_BIN=${SLOWLORIS_BIN:-}

BENCH_NAME=abuse.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

case $TARGET in
    agentgw) secure="" ;;
    agentgw-secure) secure=secure ;;
    *) die "unknown TARGET $TARGET (agentgw or agentgw-secure)" ;;
esac
[[ $SETTLE =~ ^[0-9]+s?$ ]] || die "SETTLE must be whole seconds, e.g. 15s"

install_tools
command -v curl >/dev/null || die "curl is needed for the sanity check"
# The gateway holds every slow connection and the slow client opens them: both need a file
# descriptor per connection, and inherit this limit.
raise_nofile $(( SLOW_CONNECTIONS * 2 + 4096 )) \
    || die "open-file limit $REPLY is below the $(( SLOW_CONNECTIONS * 2 + 4096 )) this run needs (ulimit -Hn)"

build_gateway
slowloris=$SLOWLORIS_BIN
if [[ -z $slowloris ]]; then
    build_examples slowloris
    slowloris="$target_dir/release/examples/slowloris"
fi
[[ -x $slowloris ]] || die "$slowloris is missing"

[[ -n $secure ]] && make_token
write_wrk_script

free_port; upstream_port=$REPLY
start_nginx upstream "$bench_dir/nginx-upstream.conf" "$upstream_port"
start_gateway "$TARGET" "http://127.0.0.1:$upstream_port" $secure
gateway_pid=${server_pid[$TARGET]}
gateway_addr=${url[$TARGET]#http://}
gateway_addr=${gateway_addr%%/*}
check_answer "$TARGET" "${url[$TARGET]}"

if [[ $WARMUP != 0 ]]; then
    log "warming up ($WARMUP)"
    run_wrk warmup "${url[$TARGET]}" "$CONNECTIONS" "$WARMUP"
fi

# Starts the slow clients; waits until they hold (nearly) all their connections, then SETTLE.
start_slowloris() { # log
    local out=$1 open=0
    # With the security stack, slow bodies carry the token: a request without one is answered
    # 401 before its body is read, and the body timeout would never be reached.
    local auth=()
    [[ -n $secure ]] && auth=(--header "Authorization: Bearer $TOKEN")
    "$slowloris" --addr "$gateway_addr" --connections "$SLOW_CONNECTIONS" "${auth[@]}" \
        --interval "$SLOW_INTERVAL" --mode "$SLOW_MODE" --report-every 1s --ramp 1s >"$out" 2>&1 &
    slowloris_pid=$!
    pids+=("$slowloris_pid")
    for _ in $(seq 1 30); do
        sleep 1
        kill -0 "$slowloris_pid" 2>/dev/null || { cat "$out" >&2; die "slowloris exited"; }
        open=$(sed -n 's/^t=.* open=\([0-9]*\) .*/\1/p' "$out" | tail -n1)
        (( ${open:-0} * 100 >= SLOW_CONNECTIONS * 99 )) && break
    done
    log "slowloris holds ${open:-0} of $SLOW_CONNECTIONS connections; settling for $SETTLE"
    sleep "${SETTLE%s}"
}

# The number after NAME= in a RESULT line (0 when absent).
field() { # line name
    local value
    value=$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<" $1")
    echo "${value:-0}"
}

declare -A rps p50 p99 errors note
runs=()
record() { # run
    runs+=("$1")
    rps[$1]=$RPS
    p50[$1]=$P50
    p99[$1]=$P99
    errors[$1]=$ERRORS
}

failed=0
verdicts=()
for round in $(seq 1 "$ROUNDS"); do
    log "round $round: unattacked, $CONNECTIONS connections, $DURATION"
    run_wrk "unattacked-$round" "${url[$TARGET]}" "$CONNECTIONS" "$DURATION"
    record "unattacked-$round"
    note[unattacked-$round]="gateway fds $(open_fds "$gateway_pid")"

    slow_log="$tmp/slowloris-$round.log"
    start_slowloris "$slow_log"
    fds_before=$(open_fds "$gateway_pid")
    attack_from=$(sed -n 's/^t= *\([0-9]*\)s .*/\1/p' "$slow_log" | tail -n1)
    log "round $round: attacked by $SLOW_CONNECTIONS slow connections ($SLOW_MODE), $DURATION"
    run_wrk "attacked-$round" "${url[$TARGET]}" "$CONNECTIONS" "$DURATION"
    record "attacked-$round"
    fds_after=$(open_fds "$gateway_pid")
    stop_pid "$slowloris_pid" TERM
    # Open slow connections over the attacked run (report lines from its start on).
    open_range=$(awk -v from="${attack_from:-0}" '
        /^t=/ { t = $1; sub(/^t= */, "", t); sub(/s$/, "", t)
                if (t + 0 < from + 0) next
                for (i = 2; i <= NF; i++) if ($i ~ /^open=/) { v = substr($i, 6) + 0
                    if (n == 0 || v < lo) lo = v; if (n == 0 || v > hi) hi = v; n++ } }
        END { if (n) printf "%d-%d", lo, hi; else printf "?" }' "$slow_log")
    result=$(grep '^RESULT' "$slow_log" || true)
    note[attacked-$round]="slow connections open ${open_range}; cut by the gateway $(field "$result" cut) (held p50 $(field "$result" cut_p50_ms) ms, max $(field "$result" cut_max_ms) ms); longest held at the end $(( $(field "$result" held_longest_ms) / 1000 )) s; gateway fds ${fds_before}-${fds_after}"
    grep -q '^answered' "$slow_log" && note[attacked-$round]+="; $(grep '^answered' "$slow_log" | tr '\n' ' ')"

    log "round $round: unattacked again, $DURATION"
    run_wrk "after-$round" "${url[$TARGET]}" "$CONNECTIONS" "$DURATION"
    record "after-$round"
    note[after-$round]="gateway fds $(open_fds "$gateway_pid")"

    ratio=$(awk -v a="${p99[attacked-$round]}" -v u="${p99[unattacked-$round]}" 'BEGIN { printf "%.2f", (u > 0 ? a / u : 0) }')
    attacked_errors=${errors[attacked-$round]}
    verdict="round $round: attacked p99 / unattacked p99 = $ratio (target <= 2), errors attacked $attacked_errors (target 0)"
    if awk -v r="$ratio" 'BEGIN { exit !(r <= 2) }' && (( attacked_errors == 0 )); then
        verdicts+=("$verdict: **met**")
    else
        verdicts+=("$verdict: **not met**")
        failed=1
    fi
done

echo
echo "$TARGET, POST /v1/chat/completions, wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $SLOW_CONNECTIONS slow connections ($SLOW_MODE mode, a byte every $SLOW_INTERVAL, settled $SETTLE); $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| run | req/s | p50 us | p99 us | errors | notes |"
echo "|---|---:|---:|---:|---:|---|"
for run in "${runs[@]}"; do
    echo "| $run | ${rps[$run]} | ${p50[$run]} | ${p99[$run]} | ${errors[$run]} | ${note[$run]} |"
done
echo
for verdict in "${verdicts[@]}"; do
    echo "- $verdict"
done
exit "$failed"
