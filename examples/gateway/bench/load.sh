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
# round). Prints a markdown table per round (req/s, p50, p99, and the CPU time of the process
# under test per request: utime + stime from /proc/PID/stat before and after each run, nginx's
# workers included, divided by the requests served) and the ratios of every round.
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
#   GATEWAY_YAML=""      extra top-level YAML for the gateway configs (e.g. a server: block)
# The helpers shared with abuse.sh and soak.sh are in lib.sh.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-"1 32 256"}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2s}
TARGETS=${TARGETS:-"direct nginx-proxy agentgw agentgw-secure"}
SKIP_GATEWAY=${SKIP_GATEWAY:-0}
[[ $SKIP_GATEWAY == 1 ]] && TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -v '^agentgw' | tr '\n' ' ')

BENCH_NAME=load.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

[[ " $TARGETS " == *" agentgw-secure "* ]] && make_token
write_wrk_script

# --- main -------------------------------------------------------------------------------------

install_tools
command -v curl >/dev/null || die "curl is needed for the sanity checks"

[[ " $TARGETS " == *" agentgw"* ]] && build_gateway

free_port; upstream_port=$REPLY
free_port; proxy_port=$REPLY
start_nginx upstream "$bench_dir/nginx-upstream.conf" "$upstream_port"
start_nginx proxy "$bench_dir/nginx-proxy.conf" "$proxy_port" "$upstream_port"

path=/v1/chat/completions
targets=()
url[direct]="http://127.0.0.1:$upstream_port$path"
url[nginx-proxy]="http://127.0.0.1:$proxy_port$path"
server_pid[direct]=${server_pid[upstream]}
server_pid[nginx-proxy]=${server_pid[proxy]}

for target in $TARGETS; do
    case $target in
        direct | nginx-proxy) ;;
        agentgw) start_gateway agentgw "http://127.0.0.1:$upstream_port" ;;
        agentgw-secure) start_gateway agentgw-secure "http://127.0.0.1:$upstream_port" secure ;;
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
