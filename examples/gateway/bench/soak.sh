#!/usr/bin/env bash
# Soak test of the agentgw example gateway: many long SSE streams through the security stack,
# and the gateway's memory while they run.
#
# The `mock_upstream` example (the OpenAI mock of agentgw-test-support, in a process of its own
# so that its memory is not counted) streams chat completions; agentgw runs one llm route to it
# with JWT (RS256) authentication, a CEL rule, a request prompt guard and response masking of
# builtin PII (SECURE=0: no policies). The `sse_soak` example opens STREAMS streams over RAMP,
# each lasting DURATION at one event per CHUNK_DELAY, with personal data in every repetition of
# the answer for the response guard to mask, and checks every event (see its docs).
#
# Every SAMPLE_EVERY the script samples the gateway's resident memory (VmRSS in
# /proc/PID/status), open file descriptors and CPU time next to the client's counts of open
# streams and events, then reports:
#   - errors: failed streams (target 0);
#   - RSS idle (after a short warm-up stream run), RSS after warm-up (WARMUP after every stream
#     is open) and at the end of the plateau (the last sample with every stream open): flat?;
#   - memory per open stream: (median RSS with every stream open - RSS idle) / streams
#     (target <= 16 KiB);
#   - RSS 5 s after the streams closed, and AFTER_WAIT after (the gateway's upstream pool drops
#     an idle connection 90-180 s after it went idle: hyper-util checks every 90 s), and the
#     gateway's CPU time per event on the plateau.
#
# Environment:
#   STREAMS=10000        streams open at once
#   DURATION=300s        length of each stream
#   CHUNK_DELAY=300ms    time between two events of a stream
#   RAMP=60s             time over which the streams are opened
#   WARMUP=30s           plateau time before the "after warm-up" sample
#   SAMPLE_EVERY=5s      sampling period (whole seconds)
#   AFTER_WAIT=190s      when to take the last RSS sample after the streams closed (whole seconds)
#   ROUNDS=1             rounds of STREAMS streams against the same gateway; RSS AFTER_WAIT after
#                        each round tells a leak (growing) from memory kept for reuse (flat)
#   SECURE=1             0: the route without policies (no JWT, CEL or guards)
#   CLIENT_HTTP2=0       1: the client speaks HTTP/2 (h2c) to the gateway, STREAMS_PER_CONNECTION
#                        streams multiplexed on each connection (200), instead of HTTP/1.1 with
#                        one connection per stream
#   UPSTREAM_HTTP2=0     1: the gateway speaks HTTP/2 (h2c) to the mock (`backend.http2: true`):
#                        one upstream connection per worker carries all the streams
#   PII=1                0: no personal data in the answers (nothing to mask)
#   SKIP_BUILD=1         use the existing release binaries instead of building them
#   GATEWAY_BIN=PATH     the agentgw binary to measure (nothing is built for it)
#   GATEWAY_ARGS=""      extra agentgw arguments
#   GATEWAY_YAML=""      extra top-level YAML for the gateway config, e.g. a server: block
#   KEEP_TMP=1           keep the temp dir (configs, logs, samples.txt)
# Exits non-zero when a stream failed.
set -euo pipefail

STREAMS=${STREAMS:-10000}
DURATION=${DURATION:-300s}
CHUNK_DELAY=${CHUNK_DELAY:-300ms}
RAMP=${RAMP:-60s}
WARMUP=${WARMUP:-30s}
SAMPLE_EVERY=${SAMPLE_EVERY:-5s}
SECURE=${SECURE:-1}
PII=${PII:-1}
AFTER_WAIT=${AFTER_WAIT:-190s}
ROUNDS=${ROUNDS:-1}
CLIENT_HTTP2=${CLIENT_HTTP2:-0}
STREAMS_PER_CONNECTION=${STREAMS_PER_CONNECTION:-200}

BENCH_NAME=soak.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

# Whole seconds of a duration written as N, Ns, Nm or Nh.
seconds() {
    case $1 in
        *h) echo $(( ${1%h} * 3600 )) ;;
        *ms) die "$1: whole seconds needed here" ;;
        *m) echo $(( ${1%m} * 60 )) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
with_unit() { [[ $1 =~ ^[0-9]+$ ]] && echo "${1}s" || echo "$1"; }
DURATION=$(with_unit "$DURATION")
RAMP=$(with_unit "$RAMP")
CHUNK_DELAY=$(with_unit "$CHUNK_DELAY")
warmup_s=$(seconds "$WARMUP")
sample_s=$(seconds "$SAMPLE_EVERY")
after_s=$(seconds "$AFTER_WAIT")

# Over HTTP/1.1 each stream is a client socket and an upstream socket of the gateway (plus its
# listeners and files: about 100), and one socket of the client and of the mock; they all inherit
# this limit. Over HTTP/2 the streams share connections.
client_conns=$STREAMS
(( CLIENT_HTTP2 == 1 )) && client_conns=$(( (STREAMS + STREAMS_PER_CONNECTION - 1) / STREAMS_PER_CONNECTION ))
upstream_conns=$STREAMS
(( UPSTREAM_HTTP2 == 1 )) && upstream_conns=64
if ! raise_nofile $(( client_conns + upstream_conns + 128 )); then
    die "the open-file limit is $REPLY and cannot be raised (no CAP_SYS_RESOURCE?): the gateway needs a descriptor per client and per upstream connection ($client_conns + $upstream_conns)"
fi
read -r port_low port_high </proc/sys/net/ipv4/ip_local_port_range
if (( STREAMS * 2 > port_high - port_low )); then
    log "warning: $((STREAMS * 2)) loopback connections need more ephemeral ports than $port_low-$port_high offers"
fi

build_gateway
build_examples mock_upstream sse_soak
examples="$target_dir/release/examples"

secure=""
if [[ $SECURE == 1 ]]; then
    secure=secure
    make_token
    printf '%s' "$TOKEN" >"$tmp/token"
fi
token_args=()
[[ -n $secure ]] && token_args=(--token-file "$tmp/token")
pii_args=()
[[ $PII == 1 ]] || pii_args=(--no-pii)
# The client's protocol rides along with the other per-run arguments.
[[ $CLIENT_HTTP2 == 1 ]] && pii_args+=(--http2 --streams-per-connection "$STREAMS_PER_CONNECTION")
# Without the response guard the personal data comes through as the mock sent it.
[[ -n $secure ]] || pii_args+=(--unmasked)

free_port; mock_port=$REPLY
"$examples/mock_upstream" --listen "127.0.0.1:$mock_port" >"$tmp/mock.log" 2>&1 &
pids+=($!)
mock_pid=$!
wait_for_port "$mock_port" mock_upstream "$tmp/mock.log" "$mock_pid"
start_gateway soak "http://127.0.0.1:$mock_port" $secure
gateway_pid=${server_pid[soak]}

log "warm-up: 50 short streams"
"$examples/sse_soak" --url "${url[soak]}" "${token_args[@]}" "${pii_args[@]}" --streams 50 \
    --duration 3s --chunk-delay 100ms --ramp 1s --report-every 10s >"$tmp/warmup.log" 2>&1 \
    || { cat "$tmp/warmup.log" >&2; die "the warm-up streams failed"; }
sleep 3
idle_rss=$(for _ in 1 2 3; do rss_kib "$gateway_pid"; sleep 1; done | sort -n | sed -n 2p)
idle_fds=$(open_fds "$gateway_pid")
log "gateway idle: RSS $idle_rss KiB, $idle_fds fds"

samples="$tmp/samples.txt"
client_log="$tmp/client.log"
: >"$client_log"
# One line per sample: seconds rss_kib fds cpu_ticks open ok failed events mock_rss_kib load1
# (the machine's 1-minute load average: anything else running shows there)
sampler() {
    local start=$SECONDS line rss
    while :; do
        rss=$(rss_kib "$gateway_pid")
        [[ -n $rss ]] || { log "the gateway is gone"; return; }
        line=$(grep '^t=' "$client_log" | tail -n1 || true)
        awk -v t=$(( SECONDS - start )) -v rss="$rss" -v fds="$(open_fds "$gateway_pid")" \
            -v ticks="$(cpu_ticks "$gateway_pid")" -v mock="$(rss_kib "$mock_pid")" -v line="$line" \
            -v load="$(cut -d' ' -f1 /proc/loadavg)" '
            BEGIN {
                n = split(line, f, " ")
                for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
                printf "%d %d %d %d %d %d %d %d %d %s\n", t, rss, fds, ticks, v["open"], v["ok"], v["failed"], v["events"], mock, load
            }' >>"$samples"
        tail -n1 "$samples" | awk '{ printf "[soak.sh] t=%ss gateway RSS %.1f MiB, %d fds; streams open %d, ok %d, failed %d; events %d; load %s\n", $1, $2 / 1024, $3, $5, $6, $7, $8, $10 }' >&2
        sleep "$sample_s"
    done
}
sampler &
sampler_pid=$!
pids+=("$sampler_pid")

log "$STREAMS streams of $DURATION (an event every $CHUNK_DELAY), opened over $RAMP"
client_status=0
"$examples/sse_soak" --url "${url[soak]}" "${token_args[@]}" "${pii_args[@]}" --streams "$STREAMS" \
    --duration "$DURATION" --chunk-delay "$CHUNK_DELAY" --ramp "$RAMP" --report-every 1s \
    >"$client_log" 2>&1 || client_status=$?
stop_pid "$sampler_pid"
sleep 5
closed_rss=$(rss_kib "$gateway_pid")
closed_fds=$(open_fds "$gateway_pid")
[[ -n $closed_rss ]] || die "the gateway exited during the run (see $tmp/soak.log with KEEP_TMP=1)"
if (( after_s > 5 )); then
    log "waiting $AFTER_WAIT for the upstream pool's idle connections to expire (90-180 s)"
    sleep $(( after_s - 5 ))
fi
after_rss=$(rss_kib "$gateway_pid")
after_fds=$(open_fds "$gateway_pid")

# More rounds of the same streams against the same gateway: RSS after each (AFTER_WAIT after its
# streams closed) grows round over round when something leaks, and stays put when the allocator
# only keeps freed memory for reuse.
round_rss=("$after_rss")
round_failed=0
for round in $(seq 2 "$ROUNDS"); do
    log "round $round of $ROUNDS: $STREAMS streams of $DURATION"
    "$examples/sse_soak" --url "${url[soak]}" "${token_args[@]}" "${pii_args[@]}" --streams "$STREAMS" \
        --duration "$DURATION" --chunk-delay "$CHUNK_DELAY" --ramp "$RAMP" --report-every 10s \
        >"$tmp/client-$round.log" 2>&1 || true
    round_result=$(grep '^RESULT' "$tmp/client-$round.log" || true)
    failed_now=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$round_result")
    round_failed=$(( round_failed + ${failed_now:-$STREAMS} ))
    sleep "$after_s"
    round_rss+=("$(rss_kib "$gateway_pid")")
    log "round $round: ${failed_now:-?} failed; gateway RSS $(( ${round_rss[-1]:-0} / 1024 )) MiB $AFTER_WAIT after"
done

grep -v '^t=' "$client_log" >&2 || true
result=$(grep '^RESULT' "$client_log" || true)
[[ -n $result ]] || { tail -n 20 "$client_log" >&2; die "the soak client did not finish (status $client_status)"; }

# The plateau: samples with (nearly) every stream open.
tick=$(getconf CLK_TCK)
read -r max_open plateau_n plateau_start plateau_end median_rss median_open warm_t warm_rss end_t end_rss cpu_us_per_event load_min load_max <<<"$(
    awk -v warmup="$warmup_s" -v tick="$tick" '
        # Sorts a[1..n] in place (mawk has no asort; n is a few hundred samples at most).
        function sort(a, n,    i, j, v) {
            for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
        }
        { t[NR] = $1; rss[NR] = $2; ticks[NR] = $4; open[NR] = $5; events[NR] = $8; load[NR] = $10; if ($5 > max) max = $5 }
        END {
            # Every stream open, or within 0.5% of the most ever open when some failed early.
            limit = max - int(max * 0.005)
            for (i = 1; i <= NR; i++) if (open[i] >= limit && max > 0) { idx[++n] = i }
            if (n == 0) { print 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0; exit }
            first = idx[1]; last = idx[n]
            warm = last
            for (k = 1; k <= n; k++) if (t[idx[k]] >= t[first] + warmup) { warm = idx[k]; break }
            # Medians of RSS and open streams over the plateau.
            for (k = 1; k <= n; k++) { r[k] = rss[idx[k]]; o[k] = open[idx[k]] }
            sort(r, n); sort(o, n)
            de = events[last] - events[warm]
            cpu = (de > 0 ? (ticks[last] - ticks[warm]) / tick * 1e6 / de : 0)
            lmin = load[first]; lmax = load[first]
            for (k = 1; k <= n; k++) { l = load[idx[k]] + 0; if (l < lmin) lmin = l; if (l > lmax) lmax = l }
            printf "%d %d %d %d %d %d %d %d %d %d %.1f %s %s\n", max, n, t[first], t[last], r[int((n + 1) / 2)], o[int((n + 1) / 2)], t[warm], rss[warm], t[last], rss[last], cpu, lmin, lmax
        }' "$samples"
)"

per_stream=$(awk -v m="$median_rss" -v i="$idle_rss" -v n="$median_open" 'BEGIN { printf "%.1f", (n > 0 ? (m - i) / n : 0) }')
growth=$(awk -v w="$warm_rss" -v e="$end_rss" 'BEGIN { printf "%+.1f", (e - w) / 1024 }')
growth_pct=$(awk -v w="$warm_rss" -v e="$end_rss" -v i="$idle_rss" 'BEGIN { printf "%+.1f", (w > i ? (e - w) * 100 / (w - i) : 0) }')
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
field() { # name
    local value
    value=$(sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $result")
    echo "${value:-0}"
}

echo
echo "agentgw $([[ -n $secure ]] && echo "with JWT + CEL + prompt guards (response masking$([[ $PII == 1 ]] || echo ", no PII"))" || echo "without policies"), $STREAMS SSE streams of $DURATION (an event every $CHUNK_DELAY), opened over $RAMP; $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| measure | value |"
echo "|---|---:|"
echo "| streams ok / failed | $(field ok) / $(field failed) |"
echo "| events received | $(field events) (per stream $(field events_min)-$(field events_max)) |"
echo "| card numbers masked | $(field masked) |"
echo "| stream duration | $(field duration_min_s)-$(field duration_max_s) s |"
echo "| most streams open at once | $max_open |"
echo "| plateau (every stream open) | t=${plateau_start}-${plateau_end} s, $plateau_n samples, load average $load_min-$load_max |"
echo "| gateway RSS idle | $(mib "$idle_rss") MiB |"
echo "| gateway RSS with $median_open streams open (median) | $(mib "$median_rss") MiB |"
echo "| **memory per open stream** | **$per_stream KiB** |"
echo "| gateway RSS after warm-up (t=$warm_t s) | $(mib "$warm_rss") MiB |"
echo "| gateway RSS at the end of the plateau (t=$end_t s) | $(mib "$end_rss") MiB |"
echo "| change over the plateau | $growth MiB ($growth_pct% of the streams' memory) |"
echo "| gateway RSS 5 s after the streams closed | $(mib "$closed_rss") MiB ($closed_fds fds; idle $idle_fds) |"
(( after_s > 5 )) && echo "| gateway RSS $AFTER_WAIT after the streams closed | $(mib "$after_rss") MiB ($after_fds fds) |"
if (( ROUNDS > 1 )); then
    list=""
    for rss in "${round_rss[@]}"; do list+="${list:+, }$(mib "$rss")"; done
    echo "| gateway RSS $AFTER_WAIT after each of $ROUNDS rounds | $list MiB (failed streams in rounds 2-$ROUNDS: $round_failed) |"
fi
echo "| gateway CPU per event on the plateau | $cpu_us_per_event us |"
echo
failed=0
if (( $(field failed) == 0 && client_status == 0 && round_failed == 0 )); then
    echo "- errors: 0 (target 0): **met**"
else
    echo "- errors: $(( $(field failed) + round_failed )) failed streams (target 0): **not met**"
    failed=1
fi
if awk -v p="$per_stream" 'BEGIN { exit !(p <= 16) }'; then
    echo "- memory per open stream: $per_stream KiB (target <= 16 KiB): **met**"
else
    echo "- memory per open stream: $per_stream KiB (target <= 16 KiB): **not met**"
fi
echo "- RSS from after warm-up to the end of the plateau: $growth MiB ($growth_pct%)"
exit "$failed"
