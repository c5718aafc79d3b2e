#!/usr/bin/env bash
# Instructions per request of the agentgw example gateway, counted by valgrind's callgrind:
# the bare route and load.sh's secure stack in front of nginx, the same requests as load.sh.
#
# Requests/s and CPU time on a shared machine move by 10-20% between runs of the same build;
# the instructions a request executes do not (the same build gives the same count to within
# 0.1%). So this is the measure to compare two builds of the gateway with, change by change,
# with the functions that account for the difference; load.sh then says what a difference is
# worth in requests/s.
#
# Each target runs under callgrind with one proxy worker; after WARMUP of wrk traffic (caches,
# pools, the JWT cache) the counters are zeroed, wrk sends requests over 4 connections for
# DURATION, the counters are dumped, and the count is divided by the requests wrk completed
# (at least a thousand or two under valgrind: the at most 4 requests in flight at the end are a
# rounding error). The instructions counted are user space only,
# and under valgrind the CPU features differ (no SHA extensions: the JWT cache key is hashed
# in software, about 30,000 instructions that take 0.3 us on the real processor).
#
# Environment:
#   DURATION=20s            wrk traffic counted per target
#   WARMUP=8s               wrk traffic before the counters are zeroed
#   TARGETS="agentgw agentgw-secure"
#   GATEWAY_BIN=PATH        the agentgw binary to measure (else built as in load.sh)
#   BASELINE_BIN=PATH       a second agentgw binary measured the same way: prints both, and the
#                           functions whose instructions per request changed most
#   TOP=25                  functions listed per comparison
#   KEEP_TMP=1              keep the callgrind files (callgrind_annotate them for more)
set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-8s}
TARGETS=${TARGETS:-"agentgw agentgw-secure"}
TOP=${TOP:-25}
NGINX_WORKERS=${NGINX_WORKERS:-auto}

BENCH_NAME=instructions.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null \
    || die "valgrind is needed (apt-get install valgrind)"
install_tools
make_token
write_wrk_script
build_gateway

free_port; upstream_port=$REPLY
start_nginx upstream "$bench_dir/nginx-upstream.conf" "$upstream_port"
path=/v1/chat/completions

# Runs `bin` as target `name` under callgrind; sets IR (instructions per request) and FILE.
measure() { # name bin
    local name=$1 bin=$2 secure="" port out pid requests total
    [[ $name == agentgw-secure ]] && secure=secure
    free_port; port=$REPLY
    local saved_bin=$gateway_bin
    gateway_bin=$bin
    write_gateway_config "$name" "$port" "http://127.0.0.1:$upstream_port" "$secure"
    gateway_bin=$saved_bin
    out="$tmp/callgrind-$name-$(basename "$bin").out"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
        "$bin" --config "$tmp/$name.yaml" --worker-threads 1 >"$tmp/$name-valgrind.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    # Starting takes seconds under valgrind: up to two minutes.
    for _ in $(seq 1 1200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$tmp/$name-valgrind.log" >&2; die "agentgw exited under valgrind"; }
        sleep 0.1
    done
    wrk -t1 -c4 -d"$WARMUP" -s "$tmp/chat.lua" "http://127.0.0.1:$port$path" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    wrk -t1 -c4 -d"$DURATION" -s "$tmp/chat.lua" "http://127.0.0.1:$port$path" >"$tmp/$name-wrk.txt"
    callgrind_control -d "$pid" >/dev/null 2>&1
    stop_pid "$pid"
    requests=$(awk '/requests in/ { print $1 }' "$tmp/$name-wrk.txt")
    if grep -q 'Non-2xx' "$tmp/$name-wrk.txt"; then
        die "$name answered errors under valgrind (see $tmp/$name-wrk.txt with KEEP_TMP=1)"
    fi
    FILE="$out.1"
    [[ -s $FILE ]] || die "callgrind wrote no dump for $name"
    total=$(callgrind_annotate "$FILE" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    IR=$(( total / requests ))
    REQUESTS=$requests
}

# The functions (self cost) whose instructions per request differ most between two dumps.
compare() { # before_file before_requests after_file after_requests
    python3 - "$1" "$2" "$3" "$4" "$TOP" <<'PY'
import re, subprocess, sys
def load(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(?:\?\?\?|[^ ]*\.[A-Za-z]+):(.*?)( \[.*\])?$", line)
        if m:
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs
before, after = load(sys.argv[1]), load(sys.argv[3])
nb, na, top = float(sys.argv[2]), float(sys.argv[4]), int(sys.argv[5])
# The thread entry points carry the whole program's cost in this listing: not functions of note.
roots = {"clone", "start_thread", "(below main)", "<std::sys::thread::unix::Thread>::new::thread_start",
         "core::ops::function::FnOnce::call_once{{vtable.shim}}"}
for costs in (before, after):
    for root in roots:
        costs.pop(root, None)
rows = sorted(set(before) | set(after),
              key=lambda k: -abs(after.get(k, 0) / na - before.get(k, 0) / nb))
print("| before | after | change | function |")
print("|---:|---:|---:|---|")
for k in rows[:top]:
    b, a = before.get(k, 0) / nb, after.get(k, 0) / na
    print(f"| {b:.0f} | {a:.0f} | {a - b:+.0f} | `{k[:110]}` |")
PY
}

echo
echo "Instructions per request (callgrind, user space, one worker, wrk -c4 for $DURATION after $WARMUP), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
declare -A ir file requests base_ir base_file base_requests
for target in $TARGETS; do
    log "$target: $gateway_bin under callgrind"
    measure "$target" "$gateway_bin"
    ir[$target]=$IR
    file[$target]=$FILE
    requests[$target]=$REQUESTS
    if [[ -n ${BASELINE_BIN:-} ]]; then
        log "$target: $BASELINE_BIN under callgrind"
        measure "$target" "$BASELINE_BIN"
        base_ir[$target]=$IR
        base_file[$target]=$FILE
        base_requests[$target]=$REQUESTS
    fi
done

if [[ -n ${BASELINE_BIN:-} ]]; then
    echo "| target | baseline | this build | change |"
    echo "|---|---:|---:|---:|"
    for target in $TARGETS; do
        awk -v t="$target" -v b="${base_ir[$target]}" -v a="${ir[$target]}" \
            'BEGIN { printf "| %s | %d | %d | %+d (%+.1f%%) |\n", t, b, a, a - b, (a - b) * 100 / b }'
    done
    for target in $TARGETS; do
        echo
        echo "$target, per request, the functions that changed most (self cost):"
        echo
        compare "${base_file[$target]}" "${base_requests[$target]}" "${file[$target]}" "${requests[$target]}"
    done
else
    echo "| target | instructions per request |"
    echo "|---|---:|"
    for target in $TARGETS; do
        echo "| $target | ${ir[$target]} |"
    done
fi
