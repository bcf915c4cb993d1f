#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Runs every benchmark of issue 5 from an already built tree and prints
# ONE table: our figure, the baseline measured in the same run, and the
# ratio.  scripts/bench.sh installs, builds and then calls this.
#
#   bench/run.sh BUILD_DIR [--quick]
#
# Ours and the baselines run interleaved (ours, nng, NATS, ours, ...) so
# that the noise of a shared machine hits them alike; each figure is the
# median of RUNS runs (3, or 1 with --quick).  Every raw RESULT line goes
# to BUILD_DIR/bench-results/results.txt, every program's output to
# log.txt beside it, the per-change gossip times to gossip-raw.txt.
# Baselines whose programs are missing (NATS, Serf) show as "n/a".
set -u

B=${1:?usage: bench/run.sh BUILD_DIR [--quick]}
QUICK=0
[ "${2:-}" = "--quick" ] && QUICK=1
B=$(cd "$B" && pwd)
OUT="$B/bench-results"
mkdir -p "$OUT"
: >"$OUT/results.txt"
: >"$OUT/log.txt"
: >"$OUT/gossip-raw.txt"
BIN="$B/bench"
SIM="$B/gossip/gossip-sim"

if [ $QUICK = 1 ]; then
  RUNS=1 LATN=3000 SECS=1 GN="8 32" GCH=30 GKILL=1 SN="8" SCH=8 SKILL=1
  SCAP=5000 SIMN="32 1000 10000" SIMSEEDS="1" REGS=5000
else
  RUNS=3 LATN=10000 SECS=2 GN="8 16 32" GCH=100 GKILL=3 SN="8 16 32" SCH=20
  SKILL=3 SCAP=10000 SIMN="32 100 1000 10000" SIMSEEDS="1 2 3" REGS=25000
fi

HAVE_NATS=0
[ -x "$BIN/bench_nats" ] && command -v nats-server >/dev/null && HAVE_NATS=1
HAVE_SERF=0
command -v serf >/dev/null && HAVE_SERF=1

declare -A V   # key -> space-separated values from the runs

# field LINE NAME: the value of NAME=... in a RESULT line.
field() {
  printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# bench KEY "FIELD..." CMD...: runs CMD, records each FIELD of its RESULT
# line under KEY_FIELD.  A failed run records nothing (and is logged).
bench() {
  local key=$1 fields=$2
  shift 2
  local t0 line rc
  t0=$(date +%s.%N)
  echo "### $key: $*" >>"$OUT/log.txt"
  line=$("$@" 2>>"$OUT/log.txt" | tee -a "$OUT/log.txt" | grep '^RESULT' |
         tail -1)
  rc=${PIPESTATUS[0]}
  printf '%s %s\n' "$key" "$line" >>"$OUT/results.txt"
  if [ -z "$line" ]; then
    echo "bench: $key failed (exit $rc), see $OUT/log.txt" >&2
    return 0
  fi
  [ "$rc" != 0 ] && echo "bench: $key: exit $rc (kept its figures)" >&2
  local f
  for f in $fields; do
    V[${key}_$f]="${V[${key}_$f]:-} $(field "$line" "$f")"
  done
  awk -v k="$key" -v a="$(date +%s.%N)" -v b="$t0" \
    'BEGIN { printf "  %-28s %5.1fs\n", k, a - b }' >&2
}

# med KEY: median of the recorded values, or "n/a".
med() {
  local vals=${V[$1]:-}
  [ -z "${vals// /}" ] && { echo n/a; return; }
  printf '%s\n' $vals | sort -g | awk '{a[NR]=$1} END {
    if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}

# ratio A B: A/B with 2 decimals, or "-".
ratio() {
  case "$1$2" in *n/a*|*-*) echo "-"; return;; esac
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-";
                                   else printf "%.2f\n", a / b }'
}

# fmt V: numbers printed compactly (no trailing zeros beyond one decimal).
fmt() {
  case "$1" in n/a|-) echo "$1"; return;; esac
  awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.0f\n", v;
                         else if (v >= 100) printf "%.0f\n", v;
                         else printf "%.3g\n", v }'
}

echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)" >&2
echo "bench: runs=$RUNS quick=$QUICK nats=$HAVE_NATS serf=$HAVE_SERF" >&2
T_START=$(date +%s)

# ---- RPC latency and throughput, notifications ----------------------------
for _ in $(seq 1 $RUNS); do
  for sz in 1 100; do
    bench "nt_lat$sz" "p50_us p99_us" "$BIN/bench_nt" rpc-lat --size $sz --count $LATN
    bench "nng_lat$sz" "p50_us p99_us" "$BIN/bench_nng" rpc-lat --size $sz --count $LATN
    [ $HAVE_NATS = 1 ] && bench "nats_lat$sz" "p50_us p99_us" \
      "$BIN/bench_nats" rpc-lat --size $sz --count $LATN
  done
  bench nt_tput rate "$BIN/bench_nt" rpc-tput --size 100 --window 64 --seconds $SECS
  bench nng_tput rate "$BIN/bench_nng" rpc-tput --size 100 --window 64 --seconds $SECS
  for k in 1 4; do
    bench "nt_pub$k" rate "$BIN/bench_nt" pub --subs $k --size 100 --seconds $SECS
    bench "nng_pub$k" rate "$BIN/bench_nng" push --pulls $k --size 100 --seconds $SECS
    [ $HAVE_NATS = 1 ] && bench "nats_pub$k" rate \
      "$BIN/bench_nats" pub --subs $k --size 100 --seconds $SECS
  done
done

# ---- Gossip on real processes ---------------------------------------------
for n in $GN; do
  bench "nt_g$n" "prop_p50_ms prop_max_ms straggler_ratio stragglers kill_p50_ms false_dead" \
    "$BIN/bench_gossip" --nodes $n --changes $GCH --kills $GKILL --poll-us 500 \
    --raw "$OUT/gossip-raw.txt"
done
if [ $HAVE_SERF = 1 ]; then
  for n in $SN; do
    bench "serf_g$n" "prop_p50_ms prop_max_ms straggler_ratio prop_timeouts kill_p50_ms false_dead" \
      "$BIN/bench_serf" --nodes $n --changes $SCH --kills $SKILL --poll-ms 10 \
      --cap-ms $SCAP --raw "$OUT/gossip-raw.txt"
  done
fi

# ---- Simulator -------------------------------------------------------------
for n in $SIMN; do
  for s in $SIMSEEDS; do
    echo "### sim_$n seed $s: $SIM --nodes $n --seed $s --quiet" >>"$OUT/log.txt"
    if last=$("$SIM" --nodes $n --seed $s --quiet 2>>"$OUT/log.txt" | tail -1); then
      V[sim_$n]="${V[sim_$n]:-} ${last%%,*}"
      echo "sim_$n RESULT impl=sim nodes=$n seed=$s rounds=${last%%,*}" \
        >>"$OUT/results.txt"
    else
      echo "bench: gossip-sim --nodes $n --seed $s did not converge" >&2
      V[sim_$n]="${V[sim_$n]:-} 999"
    fi
  done
done

# ---- Memory ----------------------------------------------------------------
bench nt_rss rss_kb "$BIN/bench_nt" rss-idle
[ $HAVE_NATS = 1 ] && bench nats_rss rss_kb "$BIN/bench_nats" rss-idle
bench nt_regs "growth_per_node_per_100k_kb growth_total_per_100k_kb spread_s" \
  "$BIN/bench_nt" rss-regs --nodes 4 --per-node $REGS
[ $HAVE_NATS = 1 ] && bench nats_regs growth_per_100k_kb \
  "$BIN/bench_nats" rss-subs --count 100000

T_END=$(date +%s)

# ---- The table -------------------------------------------------------------
# row LABEL OURS NNG OTHER OTHER_NAME TARGET
row() {
  local o=$2 n=$3 x=$4
  local rn rx
  rn=$(ratio "$o" "$n")
  rx=$(ratio "$o" "$x")
  [ "${7:-}" = noratio ] && rx="-"
  [ "$x" = "n/a" ] || [ "$x" = "-" ] || x="$(fmt "$x") $5"
  printf '| %-40s | %9s | %9s | %5s | %-20s | %5s | %-24s |\n' \
    "$1" "$(fmt "$o")" "$(fmt "$n")" "$rn" "$x" "$rx" "$6"
}

echo
echo "notifier benchmarks - $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ), medians of $RUNS run(s), $((T_END - T_START)) s"
echo
printf '| %-40s | %9s | %9s | %5s | %-20s | %5s | %-24s |\n' \
  measure notifier "raw nng" "/nng" "other" "/oth" target
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" \
  "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..11})" \
  "$(printf -- '-%.0s' {1..7})" "$(printf -- '-%.0s' {1..22})" \
  "$(printf -- '-%.0s' {1..7})" "$(printf -- '-%.0s' {1..26})"
for sz in 1 100; do
  row "RPC p50, ${sz} B, 1 outstanding (us)" "$(med nt_lat${sz}_p50_us)" \
    "$(med nng_lat${sz}_p50_us)" "$(med nats_lat${sz}_p50_us)" NATS \
    "<=1.1 nng, <1.0 NATS"
  row "RPC p99, ${sz} B, 1 outstanding (us)" "$(med nt_lat${sz}_p99_us)" \
    "$(med nng_lat${sz}_p99_us)" "$(med nats_lat${sz}_p99_us)" NATS "-"
done
row "RPC 100 B, 64 in flight (calls/s)" "$(med nt_tput_rate)" \
  "$(med nng_tput_rate)" - - ">=1.0 nng (2 batched)"
row "Notify 100 B, 1 -> 1 node (msg/s)" "$(med nt_pub1_rate)" \
  "$(med nng_pub1_rate)" "$(med nats_pub1_rate)" NATS ">=1.0 NATS"
row "Notify 100 B, 1 -> 4 slices (msg/s)" "$(med nt_pub4_rate)" \
  "$(med nng_pub4_rate)" "$(med nats_pub4_rate)" "NATS q4" ">=1.0 NATS"
for n in 8 16 32; do
  case " $GN " in *" $n "*) ;; *) continue;; esac
  row "Gossip change -> all $n, median (ms)" "$(med nt_g${n}_prop_p50_ms)" - \
    "$(med serf_g${n}_prop_p50_ms)" Serf "<=0.5 Serf"
  row "Gossip change -> all $n, slowest (ms)" "$(med nt_g${n}_prop_max_ms)" - \
    "$(med serf_g${n}_prop_max_ms)" Serf "-"
  row "  slowest / median ($GCH | $SCH changes)" \
    "$(med nt_g${n}_straggler_ratio)" - \
    "$(med serf_g${n}_straggler_ratio)" Serf "<=3 (ours)" noratio
  row "SIGKILL -> all $n detect, median (ms)" "$(med nt_g${n}_kill_p50_ms)" - \
    "$(med serf_g${n}_kill_p50_ms)" Serf "<=0.5 Serf"
done
for n in $SIMN; do
  t=$(awk -v n=$n 'BEGIN { printf "%.1f\n", 1.5 * log(n) / log(2) }')
  mode=full; [ $n -gt 2000 ] && mode=model
  row "Sim rounds to all, N=$n ($mode)" "$(med sim_$n)" - "$t" "1.5log2N" \
    "<=1.5*log2 N"
done
row "RSS idle node (KiB)" "$(med nt_rss_rss_kb)" - "$(med nats_rss_rss_kb)" \
  nats-server "-"
row "RSS per node, 100k regs cluster (KiB)" \
  "$(med nt_regs_growth_per_node_per_100k_kb)" - \
  "$(med nats_regs_growth_per_100k_kb)" "nats 100k subs" "-"
echo
echo "Ratios are notifier / baseline from this run (lower is better for times"
echo "and memory, higher for rates).  Raw results: $OUT/results.txt"
