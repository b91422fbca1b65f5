#!/bin/sh
# Builds the libFuzzer targets in test/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer; this is not part of `make check`.
#
#   test/fuzz/build.sh                    build into $BUILD/fuzz (BUILD=build)
#   FUZZ_SECONDS=60 test/fuzz/build.sh run
#                                         build, then run each target that long
#
# Runs start from the seed corpus test/fuzz/corpus-<target> and keep what
# they find in $BUILD/fuzz/corpus-<target>, so the tree stays clean. A crash
# leaves crash-* in $BUILD/fuzz and a non-zero exit status. Run from the top
# directory of the repository.
set -eu

BUILD=${BUILD:-build}
CLANG=${CLANG:-clang}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
out=$BUILD/fuzz
targets="fuzz-azure fuzz-time fuzz-event-json fuzz-config fuzz-providers"

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz: $CLANG not installed, skipping (apt-get install clang)"
	exit 0
fi
if [ ! -f agent/event.c ]; then
	echo "fuzz: run from the top directory of the repository" >&2
	exit 2
fi

mkdir -p "$out"
cflags="-std=c11 -g -O1 -D_GNU_SOURCE -iquote agent $($PKG_CONFIG --cflags libcjson libcurl libsystemd)
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
libs=$($PKG_CONFIG --libs libcjson libcurl libsystemd)
lib_srcs="agent/event.c agent/json.c agent/azure.c agent/util.c agent/log.c agent/config.c agent/aws.c agent/gcp.c
	agent/provider.c agent/imds.c"

for t in $targets; do
	echo "fuzz: building $out/$t"
	# shellcheck disable=SC2086 # word splitting of the flag lists is intended
	"$CLANG" $cflags '-DSPOT_VERSION="fuzz"' -o "$out/$t" "test/fuzz/$t.c" $lib_srcs $libs
done

[ "${1:-}" = run ] || exit 0

status=0
for t in $targets; do
	corpus=$out/corpus-${t#fuzz-}
	mkdir -p "$corpus"
	echo "fuzz: running $t for ${FUZZ_SECONDS}s"
	if ! "$out/$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
		-artifact_prefix="$out/$t-" "$corpus" "test/fuzz/corpus-${t#fuzz-}"; then
		echo "fuzz: $t FAILED" >&2
		status=1
	fi
done
exit "$status"
