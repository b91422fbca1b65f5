#!/bin/sh
# Runs the libFuzzer targets built by `make fuzz-build` (test/fuzz.mk).
#
#   run.sh check TOTAL_SECONDS RUNS TARGET...
#       each target from its seed corpus alone, TOTAL_SECONDS/N seconds and
#       at most RUNS inputs each; one summary line per target, the log only
#       on failure (make check-fuzz)
#   run.sh long SECONDS 0 TARGET...
#       each target SECONDS long, growing $FUZZ_DIR/corpus-TARGET (make fuzz)
#   run.sh crashers 0 0 TARGET...
#       replays test/fuzz/crashers/TARGET/* (make fuzz-crashers)
#
# A target that crashes or breaks one of its invariants leaves its input in
# $FUZZ_DIR/artifacts/ and is printed here as base64, so a CI log is enough
# to recover it; the exit status is then 1. Run from the top directory.
set -u

mode=${1:-}
seconds=${2:-0}
runs=${3:-0}
[ $# -ge 3 ] && shift 3
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
case "$mode" in
check|long|crashers) ;;
*) echo "usage: run.sh check|long|crashers SECONDS RUNS TARGET..." >&2; exit 2 ;;
esac
[ $# -gt 0 ] || { echo "run.sh: no targets" >&2; exit 2; }

# Stack traces with function names and lines when llvm-symbolizer is there.
for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
	p=$(command -v "$s" 2>/dev/null) || continue
	ASAN_SYMBOLIZER_PATH=$p
	export ASAN_SYMBOLIZER_PATH
	break
done
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export UBSAN_OPTIONS

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# The value of a libFuzzer final statistic in log $1.
final_stat() {
	sed -n "s/^stat::$2: *\\([0-9]*\\).*/\\1/p" "$1" | tail -n 1
}

# Prints what made target $1 fail: its log's end and the offending input.
report_failure() {
	t=$1 log=$2
	echo "fuzz: fuzz-$t FAILED; the end of $log:"
	tail -n 60 "$log"
	for a in "$FUZZ_DIR"/artifacts/fuzz-"$t"-*; do
		[ -f "$a" ] || continue
		echo "fuzz: input $a (base64; see test/fuzz/README.md for what to do with it):"
		base64 "$a"
	done
}

mkdir -p "$FUZZ_DIR/artifacts" "$FUZZ_DIR/log"
status=0
n=$#
per=$seconds
start_all=$(now_ms)
left=$n

for t in "$@"; do
	bin=$FUZZ_DIR/fuzz-$t
	seeds=test/fuzz/corpus-$t
	log=$FUZZ_DIR/log/fuzz-$t.log
	[ -x "$bin" ] || { echo "fuzz: $bin not built (make fuzz-build)"; status=1; continue; }
	[ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds"; status=1; continue; }

	case "$mode" in
	crashers)
		dir=test/fuzz/crashers/$t
		set -- "$dir"/*
		[ -f "$1" ] || continue
		echo "fuzz: replaying $dir"
		log=$FUZZ_DIR/log/fuzz-$t-crashers.log
		if SPOT_FUZZ_STRICT=1 "$bin" -runs=1 "$@" >"$log" 2>&1; then
			echo "fuzz: fuzz-$t: every input of $dir passes now: move them to $seeds"
		else
			grep -E '^Running:|invariant broken|ERROR:|SUMMARY:|(agent|test/fuzz)/[a-z-]+[.]c:' "$log" | head -n 30
			echo "fuzz: fuzz-$t: an input of $dir still fails (log: $log)"
			status=1
		fi
		continue
		;;
	check)
		# What is left of the budget, shared by the targets still to
		# run, less a second for each one's start and corpus loading.
		per=$(((seconds * 1000 - ($(now_ms) - start_all)) / left / 1000 - 1))
		[ "$per" -lt 1 ] && per=1
		left=$((left - 1))
		# A fresh scratch corpus: every check starts from the seeds alone.
		corpus=$FUZZ_DIR/corpus-check-$t
		rm -rf "$corpus"
		set -- -runs="$runs"
		;;
	long)
		corpus=$FUZZ_DIR/corpus-$t
		set --
		;;
	esac
	mkdir -p "$corpus"
	rm -f "$FUZZ_DIR"/artifacts/fuzz-"$t"-*
	t0=$(now_ms)
	"$bin" "$@" -max_total_time="$per" -timeout=10 -print_final_stats=1 -close_fd_mask=3 \
		-artifact_prefix="$FUZZ_DIR/artifacts/fuzz-$t-" "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	ms=$(($(now_ms) - t0))
	execs=$(final_stat "$log" number_of_executed_units)
	echo "fuzz: fuzz-$t: ${execs:-?} runs in $((ms / 1000)).$((ms % 1000 / 100)) s," \
		"$(find "$corpus" "$seeds" -type f | wc -l) inputs in the corpora, exit $rc"
	if [ "$rc" != 0 ]; then
		report_failure "$t" "$log"
		status=1
	fi
done

ms=$(($(now_ms) - start_all))
[ "$mode" = crashers ] || echo "fuzz: $n targets in $((ms / 1000)).$((ms % 1000 / 100)) s: $([ "$status" = 0 ] && echo ok || echo FAILED)"
exit "$status"
