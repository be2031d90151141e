#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside input (libFuzzer).
#
#   bash Tests/Fuzz/fuzz.sh [RUNS] [TARGET…]     RUNS defaults to 1000000; targets to all
#
# Each target starts from Tests/Fuzz/Corpus/TARGET, which is then replaced by the smallest
# set of inputs covering everything reached; an input that crashes is saved in
# Tests/Fuzz/Crashes/TARGET. The unit tests replay both directories (FuzzCorpusTests), so
# every finding stays a regression test.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-1000000}
shift || true
scratch=.build/fuzz
swift build -c release --scratch-path "$scratch" --product switchyard-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xswiftc -use-ld=lld >&2
fuzzer="$scratch/release/switchyard-fuzz"
export SWIFT_BACKTRACE=enable=no   # libFuzzer's handler saves the crashing input
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(conninfo token cookie sql jsonl config theme patroni)
fi
status=0
for target in "${targets[@]}"; do
    corpus="Tests/Fuzz/Corpus/$target" crashes="Tests/Fuzz/Crashes/$target"
    mkdir -p "$corpus" "$crashes"
    work=$(mktemp -d)
    cp "$corpus"/* "$work"/ 2>/dev/null || true
    log="$work.log"
    if ( "$fuzzer" "$target" -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$work" >"$log" 2>&1 ) 2>/dev/null; then
        outcome="no crash"
    else
        outcome="CRASH (saved in $crashes)"
        status=1
        grep -E -A16 "ERROR: libFuzzer" "$log" | grep -E "ERROR|#[0-9]+ .* in .*(Switchyard|Postgres|Console|Patroni|Fuzz)" | head -8 >&2 || true
    fi
    # Keep the smallest set of inputs that covers what the old corpus and this run reached.
    merged=$(mktemp -d)
    if "$fuzzer" "$target" -merge=1 -max_len=4096 "$merged" "$corpus" "$work" >/dev/null 2>&1; then
        rm -f "$corpus"/*
        cp "$merged"/* "$corpus"/
    fi
    rm -rf "$merged"
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    seconds=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    printf '%-9s %10s executions (%s/s)  corpus %4d files  %s\n' \
        "$target" "${executed:-?}" "${seconds:-?}" "$(ls "$corpus" | wc -l)" "$outcome"
    rm -rf "$work" "$log"
done
exit $status
