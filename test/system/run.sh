#!/bin/bash
# System test: the .deb from `make deb` installed in a booted Debian 12
# container (systemd-nspawn -b --private-network), against the metadata
# simulator test/imds-sim listening on 169.254.169.254:80 inside it.
#
# Asserts: the package starts the service and it becomes active through
# READY=1; /healthz answers 200; a Preempt runs the hooks in order and is
# approved; the hook output is in the journal under SPOT_HOOK=; a SIGSTOPped
# agent is restarted by the watchdog; systemctl stop is clean; dpkg --purge
# leaves nothing behind.
#
# Needs root, debootstrap and systemd-nspawn (installed when missing) and
# the Debian mirror once: the base root file system is cached in
# /var/cache/spot-agent-test/, keyed by a hash of its package list.
# Where containers cannot run, it says why and fails, unless
# SPOT_SKIP_SYSTEM=1: then it prints "skipped: <reason>" and exits 0.
#
# Environment: BUILD, VERSION (from make), SPOT_TEST_MIRROR (Debian
# mirror, default http://deb.debian.org/debian), SPOT_TEST_KEEP=1 (keep the
# container's directory for a post-mortem).
set -euo pipefail

BUILD=${BUILD:-build}
VERSION=${VERSION:-0.1.0}
MIRROR=${SPOT_TEST_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
CACHE=/var/cache/spot-agent-test
# Packages of the base root file system besides the .deb's own dependencies.
BASE_PKGS="systemd systemd-sysv dbus curl python3 iproute2"
WAIT_STEP=0.2    # every bounded wait polls this often
WAIT_MAX=60      # ... for at most this many seconds

work=
nspawn_pid=
leader=
t_start=$SECONDS

# fd 3: the real stderr, also from inside redirected waits.
exec 3>&2
say() { printf '%s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
elapsed() { printf '%ds' $((SECONDS - $1)); }

cannot_run() {
	if [ "${SPOT_SKIP_SYSTEM:-0}" = 1 ]; then
		say "skipped: $1"
		exit 0
	fi
	say "check-system: cannot run here: $1" >&3
	say "check-system: set SPOT_SKIP_SYSTEM=1 to skip this test where containers cannot run" >&3
	exit 1
}

# In the container: all its namespaces, a clean environment.
in_ct() {
	nsenter -t "$leader" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

diagnose() {
	[ -n "$leader" ] || return 0
	say "--- systemctl status spot-agent imds-sim spot-test-addr" >&3
	in_ct systemctl --no-pager status spot-agent imds-sim spot-test-addr >&3 2>&1 || true
	say "--- journalctl -u spot-agent (last 60)" >&3
	in_ct journalctl --no-pager -u spot-agent -n 60 >&3 2>&1 || true
	say "--- journalctl -u imds-sim (last 20)" >&3
	in_ct journalctl --no-pager -u imds-sim -n 20 >&3 2>&1 || true
}

fail() {
	say "FAIL $*" >&3
	diagnose
	exit 1
}

# wait_for DESCRIPTION COMMAND...: runs COMMAND until it succeeds, every
# WAIT_STEP seconds for at most WAIT_MAX seconds.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT_MAX))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${WAIT_MAX}s waiting for: $what"
		sleep "$WAIT_STEP"
	done
}

cleanup() {
	local rc=$?
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM asks nspawn to shut the container down cleanly.
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	if [ -n "$work" ]; then
		if [ "${SPOT_TEST_KEEP:-0}" = 1 ]; then
			say "kept $work"
		else
			rm -rf "$work"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- can this machine run containers at all? ---------------------------------

[ "$(id -u)" = 0 ] || cannot_run "needs root (debootstrap, systemd-nspawn)"
[ -d /sys/fs/cgroup ] || cannot_run "no cgroup file system at /sys/fs/cgroup"
unshare --mount --pid --fork --uts --ipc --net true 2>/dev/null ||
	cannot_run "the kernel or the sandbox refuses new namespaces (unshare failed)"
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
	sh packaging/install-tools.sh system >&2 || cannot_run "debootstrap/systemd-container missing and not installable"
fi

deb=
for f in "$BUILD"/spot-agent_"$VERSION"-*.deb; do [ -f "$f" ] && deb=$f; done
[ -n "$deb" ] || fail "no $BUILD/spot-agent_$VERSION-*.deb: run make deb"
[ -x test/imds-sim ] || fail "test/imds-sim is missing"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
say "== check-system with $deb"

# --- the base root file system, cached ---------------------------------------

# The .deb's dependencies go into the base image: the container has no
# network, so dpkg -i must find them installed.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
	grep -v '^$' | LC_ALL=C sort -u | tr '\n' ' ')
# shellcheck disable=SC2086 # word splitting of the lists is wanted
pkgs=$(printf '%s\n' $BASE_PKGS $deps | LC_ALL=C sort -u | tr '\n' ',' | sed 's/,$//')
key=$(printf '%s\n' "v1" "$SUITE" "$MIRROR" "$pkgs" | sha256sum | cut -c1-16)
base=$CACHE/rootfs-$key
mkdir -p "$CACHE"
t0=$SECONDS
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$base/.complete" ]; then
	ok "base root file system cached: $base"
else
	say "building the base root file system ($SUITE: $pkgs); this takes a minute or two"
	rm -rf "$base.tmp"
	if ! debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$base.tmp" "$MIRROR" \
		>"$CACHE/debootstrap-$key.log" 2>&1; then
		tail -n 20 "$CACHE/debootstrap-$key.log" >&2
		cannot_run "debootstrap failed (mirror $MIRROR unreachable?), log: $CACHE/debootstrap-$key.log"
	fi
	# No getty on the container console; the test drives it with nsenter.
	rm -f "$base.tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
	touch "$base.tmp/.complete"
	rm -rf "$base"
	mv "$base.tmp" "$base"
	# Older images of other package lists are of no more use.
	for old in "$CACHE"/rootfs-*; do
		[ "$old" = "$base" ] || rm -rf "$old"
	done
	ok "base root file system built in $(elapsed "$t0"): $base"
fi
flock -u 9

# --- this run's container ----------------------------------------------------

work=$(mktemp -d /var/tmp/spot-system.XXXXXX)
root=$work/root
cp -a --reflink=auto "$base" "$root"
machine=spot-sys-$$-$RANDOM

# Nspawn registers with systemd-machined and asks the host's systemd for a
# scope when there is one; on a host without systemd it stays in our cgroup.
nspawn_opts=(--quiet --register=no --private-network -D "$root" -M "$machine")
[ -d /run/systemd/system ] || nspawn_opts+=(--keep-unit)

probe=$(systemd-nspawn "${nspawn_opts[@]}" /bin/true 2>&1) ||
	cannot_run "systemd-nspawn cannot start a container: $(printf '%s' "$probe" | tail -n 1)"

# What runs in the container besides the package: the address of the
# metadata service on lo, the simulator on it (both before spot-agent).
install -m 0755 test/imds-sim "$root/usr/local/bin/imds-sim"
cp "$deb" "$root/root/spot-agent.deb"
cat >"$root/etc/systemd/system/spot-test-addr.service" <<'EOF'
[Unit]
Description=Test: 169.254.169.254 on lo
DefaultDependencies=no
After=systemd-networkd.service
Before=imds-sim.service spot-agent.service network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set lo up
ExecStart=/usr/sbin/ip addr replace 169.254.169.254/32 dev lo

[Install]
WantedBy=multi-user.target
EOF
cat >"$root/etc/systemd/system/imds-sim.service" <<'EOF'
[Unit]
Description=Test: the metadata service simulator
Requires=spot-test-addr.service
After=spot-test-addr.service
Before=spot-agent.service

[Service]
ExecStart=/usr/bin/python3 /usr/local/bin/imds-sim --listen 169.254.169.254 --port 80 --port-file /run/imds-sim.port --quiet

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../spot-test-addr.service "$root/etc/systemd/system/multi-user.target.wants/spot-test-addr.service"
ln -sf ../imds-sim.service "$root/etc/systemd/system/multi-user.target.wants/imds-sim.service"

# --- boot --------------------------------------------------------------------

t0=$SECONDS
systemd-nspawn "${nspawn_opts[@]}" --console=passive -b >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1: the descendant of nspawn in another PID namespace.
find_leader() {
	local p c
	for p in $(pgrep -P "$nspawn_pid"); do
		for c in $p $(pgrep -P "$p"); do
			if [ "$(readlink "/proc/$c/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] &&
				[ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]; then
				leader=$c
				return 0
			fi
		done
	done
	kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/nspawn.log" >&3; fail "systemd-nspawn exited"; }
	return 1
}
wait_for "the container's systemd" find_leader
booted() {
	case $(in_ct systemctl is-system-running 2>/dev/null) in
	running|degraded) return 0 ;;
	*) return 1 ;;
	esac
}
wait_for "the container to finish booting" booted
ok "container $machine booted in $(elapsed "$t0") ($(in_ct systemctl is-system-running || true))"
in_ct ip -brief addr show lo | grep -q '169.254.169.254' || fail "169.254.169.254 is not on lo"
sim() { in_ct curl -fsS --noproxy '*' "$@"; }
wait_for "the simulator on 169.254.169.254:80" sim -o /dev/null http://169.254.169.254/__sim/state
ok "simulator answers on 169.254.169.254:80"

# --- install: the package enables and starts the service --------------------

t0=$SECONDS
in_ct dpkg -i /root/spot-agent.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
ok "dpkg -i in $(elapsed "$t0")"
[ "$(in_ct systemctl is-enabled spot-agent.service)" = enabled ] || fail "spot-agent.service is not enabled"
[ "$(in_ct systemctl is-enabled spot-agent.socket || true)" = disabled ] || fail "spot-agent.socket should not be enabled"
active() { [ "$(in_ct systemctl is-active spot-agent.service)" = active ]; }
wait_for "spot-agent.service active (READY=1)" active
status_text=$(in_ct systemctl show -p StatusText --value spot-agent.service)
[ -n "$status_text" ] || fail "no STATUS= text from the agent"
ok "spot-agent.service enabled and active (Type=notify: READY=1 received); StatusText: $status_text"

http_code() { in_ct curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:9470$1"; }
healthy() { [ "$(http_code /healthz)" = 200 ]; }
wait_for "/healthz 200" healthy
ok "curl http://127.0.0.1:9470/healthz: 200"

# --- a Preempt: hooks in order, approval --------------------------------------

for name in 10-x 20-y; do
	cat >"$root/etc/spot-agent.d/$name" <<EOF
#!/bin/sh
echo "hook $name: \$SPOT_EVENT_TYPE \$SPOT_EVENT_ID timeout \$SPOT_HOOK_TIMEOUT"
cat > /var/tmp/spot-test-stdin-$name.json
echo $name >> /var/tmp/spot-test-order
EOF
	chmod 0755 "$root/etc/spot-agent.d/$name"
done
rm -f "$root/var/tmp/spot-test-order"

t0=$SECONDS
created=$(sim -d '{"type":"Preempt","resources":["agent-vm0"],"not_before_in":30}' \
	http://169.254.169.254/__sim/events) || fail "POST /__sim/events"
event_id=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
say "Preempt $event_id created, NotBefore in 30 s"
approved() { sim http://169.254.169.254/__sim/approvals | grep -qi "\"$event_id\""; }
wait_for "approval of $event_id" approved
ok "event approved $(elapsed "$t0") after creation"
order=$(in_ct cat /var/tmp/spot-test-order | tr '\n' ' ')
[ "$order" = "10-x 20-y " ] || fail "hooks ran as '$order', expected '10-x 20-y '"
ok "hooks ran once each, in order: $order"
in_ct python3 - "$event_id" <<'EOF' || fail "the event on the hooks' stdin is not as expected"
import json, sys
ev = json.load(open("/var/tmp/spot-test-stdin-10-x.json"))
assert ev["id"].lower() == sys.argv[1].lower(), ev
assert ev["type"] == "Preempt" and ev["drill"] is False and ev["deadline"] > 0, ev
assert "agent-vm0" in ev["resources"], ev
EOF
ok "hook stdin: the event as JSON (id, type, resources, deadline, drill)"
hook_logged() { in_ct journalctl --no-pager -u spot-agent SPOT_HOOK=10-x | grep -q "hook 10-x: Preempt"; }
wait_for "the hook's output in the journal" hook_logged
ok "journalctl -u spot-agent SPOT_HOOK=10-x: $(in_ct journalctl --no-pager -o cat -u spot-agent SPOT_HOOK=10-x | grep -m1 'hook 10-x')"
done_state() {
	in_ct curl -s --noproxy '*' http://127.0.0.1:9470/v1/status | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["state"] == "done", s["state"]
assert [h["result"] for h in s["event"]["hooks"]] == ["ok", "ok"], s["event"]["hooks"]'
}
wait_for "/v1/status state done with both hooks ok" done_state
ok "/v1/status: state done, hooks ok"

# --- the watchdog restarts a stopped agent ------------------------------------

mkdir -p "$root/etc/systemd/system/spot-agent.service.d"
cat >"$root/etc/systemd/system/spot-agent.service.d/50-test-watchdog.conf" <<'EOF'
[Service]
WatchdogSec=4s
TimeoutAbortSec=5s
LimitCORE=0
EOF
in_ct systemctl daemon-reload
in_ct systemctl restart spot-agent.service
wait_for "spot-agent.service active after the restart" active
pid=$(in_ct systemctl show -p MainPID --value spot-agent.service)
restarts=$(in_ct systemctl show -p NRestarts --value spot-agent.service)
t0=$SECONDS
# procps is not in the image: the shell's kill builtin.
# shellcheck disable=SC2016 # $1 is expanded by the container's shell
in_ct sh -c 'kill -STOP "$1"' sh "$pid"
restarted() {
	local now
	now=$(in_ct systemctl show -p MainPID --value spot-agent.service)
	[ "$now" != 0 ] && [ "$now" != "$pid" ] && active
}
wait_for "the watchdog to restart the stopped agent" restarted
in_ct journalctl --no-pager -u spot-agent | grep -q 'Watchdog timeout' || fail "no watchdog timeout in the journal"
[ "$(in_ct systemctl show -p NRestarts --value spot-agent.service)" -gt "$restarts" ] ||
	fail "NRestarts did not grow"
ok "SIGSTOPped agent (pid $pid) killed by the watchdog (WatchdogSec=4s) and restarted in $(elapsed "$t0")"
rm -rf "$root/etc/systemd/system/spot-agent.service.d"
in_ct systemctl daemon-reload

# --- a clean stop ------------------------------------------------------------

wait_for "spot-agent.service active before the stop" active
in_ct systemctl stop spot-agent.service || fail "systemctl stop failed"
state=$(in_ct systemctl is-active spot-agent.service || true)
result=$(in_ct systemctl show -p Result --value spot-agent.service)
status=$(in_ct systemctl show -p ExecMainStatus --value spot-agent.service)
if [ "$state" != inactive ] || [ "$result" != success ] || [ "$status" != 0 ]; then
	fail "after stop: $state, result $result, exit status $status"
fi
ok "systemctl stop: inactive, result success, exit status 0"

# --- purge leaves nothing behind ----------------------------------------------

rm -f "$root/etc/spot-agent.d/10-x" "$root/etc/spot-agent.d/20-y"
in_ct dpkg --purge spot-agent >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge"; }
left=
for p in /var/lib/spot-agent /etc/spot-agent /etc/spot-agent.d /usr/bin/spot-agent \
	/lib/systemd/system/spot-agent.service /lib/systemd/system/spot-agent.socket \
	/etc/systemd/system/multi-user.target.wants/spot-agent.service \
	/usr/share/doc/spot-agent /usr/lib/spot-agent.d /usr/share/man/man8/spot-agent.8.gz; do
	in_ct test -e "$p" && left="$left $p"
done
[ -z "$left" ] || fail "left behind after purge:$left"
in_ct dpkg-query -W spot-agent >/dev/null 2>&1 && fail "dpkg still knows spot-agent"
ok "dpkg --purge: no file, directory, unit link or state left"

say "check-system: all passed in $(elapsed "$t_start")"
