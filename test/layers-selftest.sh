#!/bin/sh
# The two build checks of the tree's shape must fail on the faults they
# exist for: a copy of agent/ with one bad include at a time.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect_refused NAME CHECK...: the check must exit non-zero.
expect_refused() {
	name=$1; shift
	if "$@" >/dev/null 2>&1; then
		echo "layers-selftest: $name was not refused" >&2
		fail=1
	fi
}

fresh() {
	rm -rf "$tmp/agent"
	mkdir -p "$tmp/agent"
	(cd agent && find . -name '*.[ch]' -exec sh -c 'mkdir -p "$0/$(dirname "$1")" && cp "$1" "$0/$1"' "$tmp/agent" {} \;)
}

fresh
python3 build-aux/layers "$tmp/agent" || { echo "layers-selftest: the clean copy was refused" >&2; exit 1; }

printf '#include <sys/socket.h>\n' >>"$tmp/agent/engine/record.h"
expect_refused "an engine header including <sys/socket.h>" sh build-aux/engine-pure "$tmp/agent/engine"
fresh
printf '#include <systemd/sd-event.h>\n' >>"$tmp/agent/engine/slot.c"
expect_refused "the engine including sd-event" sh build-aux/engine-pure "$tmp/agent/engine"
fresh
printf '#include "hooks/hooks.h"\n' >>"$tmp/agent/engine/engine.h"
expect_refused "the engine including the hook runner" sh build-aux/engine-pure "$tmp/agent/engine"
expect_refused "the engine including the hook runner" python3 build-aux/layers "$tmp/agent"
fresh
printf '#include "hooks/hooks.h"\n' >>"$tmp/agent/clouds/provider.h"
expect_refused "the clouds including the hook runner" python3 build-aux/layers "$tmp/agent"
fresh
printf '#include "http/status.h"\n' >>"$tmp/agent/store/json.h"
expect_refused "the store including the HTTP face" python3 build-aux/layers "$tmp/agent"
fresh
printf '#include "agent.h"\n' >>"$tmp/agent/util.c"
expect_refused "the base including the agent" python3 build-aux/layers "$tmp/agent"
fresh
: >"$tmp/agent/stray.c"
expect_refused "a file in no layer" python3 build-aux/layers "$tmp/agent"
exit $fail
