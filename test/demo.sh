#!/bin/sh
# make demo: a simulated Azure Spot eviction end to end. Starts the bundled
# metadata simulator and the agent with a few hooks in a temporary directory,
# schedules a Preempt 30 s ahead, shows the hooks running and the final
# /v1/status, then cleans up after itself.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
agent=${SPOT_AGENT:-agent/spot-agent}
case "$agent" in /*) ;; *) agent="$top/$agent" ;; esac
tmp=$(mktemp -d /tmp/spot-demo.XXXXXX)
chmod 755 "$tmp"
# Hooks run only from a directory that nobody else may write to, all the
# way from /: not below /tmp. The build tree holds them when its own way
# passes, else /var/lib/spot-agent-test/ (build-aux/trusted-dir).
mkdir -p "$top/build"
hooks=$(mktemp -d "$(sh "$top/build-aux/trusted-dir" "$top/build/demo")/hooks.XXXXXX")
chmod 755 "$hooks"
# The state directory too: the agent refuses one that others can change.
state=$(mktemp -d "$(sh "$top/build-aux/trusted-dir" "$top/build/demo")/state.XXXXXX")
sim_pid=
agent_pid=

cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$tmp" "$hooks" "$state"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits up to $2 seconds (in 0.1 s steps) for the command in $1 to succeed.
wait_until() {
	i=0
	while ! eval "$1" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt $(($2 * 10)) ]; then
			echo "demo: timed out waiting for: $1" >&2
			exit 1
		fi
		sleep 0.1
	done
}

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat >"$hooks/05-notify" <<'HOOK'
#!/bin/sh
echo "notify: $SPOT_EVENT_TYPE $SPOT_EVENT_ID for $SPOT_VM_NAME, deadline in $((SPOT_DEADLINE - $(date +%s))) s"
HOOK
cat >"$hooks/10-checkpoint" <<'HOOK'
#!/bin/sh
echo "checkpoint: saving work (budget ${SPOT_HOOK_TIMEOUT} s)"
sleep 1
echo "checkpoint: done"
HOOK
cat >"$hooks/50-deregister" <<HOOK
#!/bin/sh
code=\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/readyz)
echo "deregister: /readyz already answers \$code, load balancers drain this VM"
HOOK
cat >"$hooks/90-flush-logs" <<'HOOK'
#!/bin/sh
echo "flush-logs: event was $(head -c 120)..."
HOOK
chmod 755 "$hooks/"*

say "starting the IMDS simulator"
/usr/bin/python3 "$top/test/imds-sim" --port 0 --port-file "$tmp/sim.port" --quiet \
	--vm-name demo-spot-vm 2>"$tmp/sim.log" &
sim_pid=$!
wait_until "test -s '$tmp/sim.port'" 10
sim="http://127.0.0.1:$(cat "$tmp/sim.port")"
echo "simulator on $sim"

say "starting spot-agent"
: >"$tmp/spot-agent.conf"
"$agent" --config "$tmp/spot-agent.conf" --imds-url "$sim" --hooks-dir "$hooks" --hooks-lib-dir none \
	--state-dir "$state" --listen "127.0.0.1:$port" --poll-interval 500 --log-format text &
agent_pid=$!
wait_until "curl -sf http://127.0.0.1:$port/healthz" 20
wait_until "curl -s http://127.0.0.1:$port/v1/status | grep -q demo-spot-vm" 20
echo "\$ curl localhost:$port/healthz"
curl -s "http://127.0.0.1:$port/healthz"

say "Azure schedules a Preempt for this VM, NotBefore in 30 s"
created=$(curl -s -X POST -d '{"type":"Preempt","not_before_in":30}' "$sim/__sim/events")
echo "$created"
id=$(echo "$created" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')

wait_until "curl -s $sim/__sim/approvals | grep -q '$id'" 40

say "the simulator saw the approval"
curl -s "$sim/__sim/approvals"
echo

say "final /v1/status"
curl -s "http://127.0.0.1:$port/v1/status"
echo
say "demo complete"
