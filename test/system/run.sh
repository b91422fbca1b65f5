#!/bin/bash
# System test: the .deb from `make deb` installed in booted Debian 12
# containers (systemd-nspawn -b --private-network), against the metadata
# simulator test/imds-sim listening on 169.254.169.254:80 inside them. Each
# scenario boots a container of its own, a copy of the cached root.
#
# install: dpkg -i in the booted container restarts logind (which started
#   with the default delay) to take the package's InhibitDelayMaxSec, and
#   not again on a reinstall; it starts the service and it
#   becomes active through READY=1 and takes a logind delay lock for
#   shutdown; /healthz answers 200; a Preempt runs the hooks in order and is
#   approved; the hook output is in the journal under SPOT_HOOK=; a hook
#   writing below /root passes a plain drill and fails drill --sandbox; a
#   SIGSTOPped agent is restarted by the watchdog; systemctl stop is clean
#   and the lock goes with the agent; dpkg --purge leaves nothing behind.
# The shutdown scenarios boot an image with the package installed the way
# images are baked (before the first boot, so logind reads the package's
# InhibitDelayMaxSec=30 at boot) and three hooks (the second sleeps 3 s)
# that record their start, environment and end on a host directory bound
# into the container; the record and the container's journal are checked
# once `systemctl poweroff` in it has ended it. Before the poweroff the agent
# holds a logind delay lock for shutdown; logind must go on only after the
# hooks, with no timeout of the lock, then systemd stops the agent (exit 0)
# and the container powers off. Each prints its times.
# eviction-shutdown: poweroff while the chain of an Azure Preempt (NotBefore
#   in 60 s) runs: during the hooks logind prepares for the shutdown and the
#   system still runs; every hook runs once, in order, for the Preempt; it is
#   approved before the lock goes.
# os-shutdown: poweroff with no notice at all: the hooks run once, in order,
#   for a Shutdown event of source OS (id os-shutdown-<boot id>, deadline
#   logind's 30 s minus the 2 s margin).
# gcp-shutdown: provider gcp; instance/preempted turns TRUE and the poweroff
#   comes at the same moment (GCP's soft-off): the hooks run once, as the
#   Preempt, not as a Shutdown.
# cloud-init: Debian's cloud-init boots with a NoCloud seed whose user data
#   is cloud-init/spot-agent.yaml, the .deb at the path it documents for
#   images (/var/cache/spot-agent/spot-agent.deb) and no network: at the
#   first boot cloud-init ends done with no errors, its bootcmd made the
#   early Scheduled Events call, the package is installed, the service
#   active with the config of write_files, logind's InhibitDelayMaxSec is
#   the package's 30 s, `spot-agent check` passes and `spot-agent drill`
#   runs the hook of write_files. Then the installer it
#   wrote refuses to run with neither a cached .deb nor DEB_URL (or a
#   DEB_URL that is not http/https), and with DEB_URL set it downloads the
#   .deb (from a server in the container) and installs it.
#
# Needs root, debootstrap and systemd-nspawn (installed when missing) and
# the Debian mirror once: the base root file system is cached in
# /var/cache/spot-agent-test/, keyed by a hash of its package list, and so
# is the root of the cloud-init scenario (the base plus CLOUD_PKGS, put in
# by apt-get in a container that has the host's network).
# Where containers cannot run, it says why and fails, unless
# SPOT_SKIP_SYSTEM=1: then it prints "skipped: <reason>" and exits 0.
#
# Environment: BUILD, VERSION (from make), SPOT_TEST_MIRROR (Debian
# mirror, default http://deb.debian.org/debian), SPOT_TEST_KEEP=1 (keep the
# containers' directories for a post-mortem), SPOT_TEST_SCENARIOS (the
# scenarios to run, default all: "install eviction-shutdown os-shutdown
# gcp-shutdown cloud-init").
set -euo pipefail

BUILD=${BUILD:-build}
VERSION=${VERSION:-0.1.0}
MIRROR=${SPOT_TEST_MIRROR:-http://deb.debian.org/debian}
SCENARIOS=${SPOT_TEST_SCENARIOS:-install eviction-shutdown os-shutdown gcp-shutdown cloud-init}
SUITE=bookworm
CACHE=/var/cache/spot-agent-test
# Packages of the base root file system besides the .deb's own dependencies.
BASE_PKGS="systemd systemd-sysv dbus curl python3 iproute2"
# ... and what the cloud-init scenario's root adds to it.
CLOUD_PKGS="cloud-init"
WAIT_STEP=0.2    # every bounded wait polls this often
WAIT_MAX=60      # ... for at most this many seconds
LOGIND_DELAY_USEC=30000000   # InhibitDelayMaxSec of the package's logind drop-in

work=
nspawn_pid=   # the running container's systemd-nspawn
nspawn_log=
leader=       # ... and its PID 1
root=         # the root directory of the current (or last) container
rec=          # the host directory its hooks record to, if any
probed=
t_start=$SECONDS

# fd 3: the real stderr, also from inside redirected waits.
exec 3>&2
say() { printf '%s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
elapsed() { printf '%ds' $((SECONDS - $1)); }
now() { date +%s.%N; }
# since T0 [T1]: seconds from T0 to T1 (default: now), two decimals.
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

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

# The container's journal: journalctl inside while it runs, read from its
# root directory once it is gone.
ct_journal() {
	if [ -n "$leader" ]; then
		in_ct journalctl --no-pager "$@"
	elif [ -n "$root" ] && [ -d "$root/var/log/journal" ]; then
		journalctl --no-pager -D "$root/var/log/journal" "$@"
	fi
}

diagnose() {
	if [ -n "$leader" ]; then
		say "--- systemctl status spot-agent imds-sim spot-test-addr" >&3
		in_ct systemctl --no-pager status spot-agent imds-sim spot-test-addr >&3 2>&1 || true
		say "--- systemd-inhibit --list" >&3
		in_ct systemd-inhibit --list --no-pager >&3 2>&1 || true
	fi
	[ -n "$root" ] || return 0
	say "--- journalctl -u spot-agent (last 60)" >&3
	ct_journal -u spot-agent -n 60 >&3 2>&1 || true
	say "--- journalctl -u imds-sim (last 20)" >&3
	ct_journal -u imds-sim -n 20 >&3 2>&1 || true
	[ -n "$rec" ] || return 0
	say "--- journalctl -u systemd-logind (last 20)" >&3
	ct_journal -u systemd-logind -n 20 >&3 2>&1 || true
	say "--- the hooks' record" >&3
	cat "$rec/hooks" >&3 2>&1 || true
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

# Ends the running container, if any: SIGTERM asks nspawn to shut it down
# cleanly; SIGKILL after 30 s.
stop_ct() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	fi
	if [ -n "$nspawn_pid" ]; then
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	nspawn_pid=
	leader=
}

cleanup() {
	local rc=$?
	stop_ct
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

want() {
	case " $SCENARIOS " in
	*" $1 "*) return 0 ;;
	*) return 1 ;;
	esac
}
for s in $SCENARIOS; do
	case $s in
	install|eviction-shutdown|os-shutdown|gcp-shutdown|cloud-init) ;;
	*) say "check-system: unknown scenario '$s' in SPOT_TEST_SCENARIOS" >&3; exit 2 ;;
	esac
done
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

# The cloud-init scenario's root: a copy of the base with CLOUD_PKGS
# installed by apt-get, in a container on the host's network (the mirror of
# the base's sources.list). Keyed by the base and the list.
ci_key=$(printf '%s\n' "v1" "$key" "$CLOUD_PKGS" | sha256sum | cut -c1-16)
ci_base=$CACHE/cloud-init-$ci_key
if want cloud-init; then
	t0=$SECONDS
	if [ -f "$ci_base/.complete" ]; then
		ok "cloud-init root file system cached: $ci_base"
	else
		say "building the cloud-init root file system (the base + $CLOUD_PKGS)"
		rm -rf "$ci_base.tmp"
		cp -a --reflink=auto "$base" "$ci_base.tmp"
		nspawn_apt=(--quiet --register=no --resolv-conf=bind-host)
		[ -d /run/systemd/system ] || nspawn_apt+=(--keep-unit)
		# shellcheck disable=SC2016 # $1 is expanded by the container's shell
		if ! systemd-nspawn "${nspawn_apt[@]}" -D "$ci_base.tmp" -M "spot-apt-$$" --as-pid2 \
			env DEBIAN_FRONTEND=noninteractive sh -c \
			'apt-get update -q && apt-get install -y -q --no-install-recommends $1 && apt-get clean' \
			sh "$CLOUD_PKGS" >"$CACHE/apt-cloud-init-$ci_key.log" 2>&1; then
			tail -n 20 "$CACHE/apt-cloud-init-$ci_key.log" >&2
			rm -rf "$ci_base.tmp"
			cannot_run "apt-get install $CLOUD_PKGS failed (mirror $MIRROR unreachable?), log: $CACHE/apt-cloud-init-$ci_key.log"
		fi
		touch "$ci_base.tmp/.complete"
		rm -rf "$ci_base"
		mv "$ci_base.tmp" "$ci_base"
		for old in "$CACHE"/cloud-init-*; do
			[ "$old" = "$ci_base" ] || rm -rf "$old"
		done
		ok "cloud-init root file system built in $(elapsed "$t0"): $ci_base"
	fi
fi
flock -u 9

# --- containers --------------------------------------------------------------

work=$(mktemp -d /var/tmp/spot-system.XXXXXX)

# Nspawn registers with systemd-machined and asks the host's systemd for a
# scope when there is one; on a host without systemd it stays in our cgroup.
nspawn_opts=(--quiet --register=no --private-network)
[ -d /run/systemd/system ] || nspawn_opts+=(--keep-unit)

# prepare_root DIR [ROOT]: DIR/root, a copy of ROOT (default: the base
# root) with what runs in the container besides the package (the address of
# the metadata service on lo, the simulator on it, both before spot-agent)
# and the .deb in /root.
prepare_root() {
	local r=$1/root
	mkdir -p "$1"
	cp -a --reflink=auto "${2:-$base}" "$r"
	if [ -z "$probed" ]; then
		probe=$(systemd-nspawn "${nspawn_opts[@]}" -D "$r" -M "spot-probe-$$" /bin/true 2>&1) ||
			cannot_run "systemd-nspawn cannot start a container: $(printf '%s' "$probe" | tail -n 1)"
		probed=1
	fi
	install -m 0755 test/imds-sim "$r/usr/local/bin/imds-sim"
	cp "$deb" "$r/root/spot-agent.deb"
	cat >"$r/etc/systemd/system/spot-test-addr.service" <<'EOF'
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
	cat >"$r/etc/systemd/system/imds-sim.service" <<'EOF'
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
	mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
	ln -sf ../spot-test-addr.service "$r/etc/systemd/system/multi-user.target.wants/spot-test-addr.service"
	ln -sf ../imds-sim.service "$r/etc/systemd/system/multi-user.target.wants/imds-sim.service"
}

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
	kill -0 "$nspawn_pid" 2>/dev/null || { cat "$nspawn_log" >&3; fail "systemd-nspawn exited"; }
	return 1
}
booted() {
	case $(in_ct systemctl is-system-running 2>/dev/null) in
	running|degraded) return 0 ;;
	*) return 1 ;;
	esac
}
sim() { in_ct curl -fsS --noproxy '*' "$@"; }
active() { [ "$(in_ct systemctl is-active spot-agent.service)" = active ]; }

logind_prop() {
	in_ct busctl get-property org.freedesktop.login1 /org/freedesktop/login1 \
		org.freedesktop.login1.Manager "$1"
}

# spot-agent's delay lock for shutdown, taken by its main process.
holds_lock() {
	local pid
	pid=$(in_ct systemctl show -p MainPID --value spot-agent.service)
	in_ct systemd-inhibit --list --no-legend --no-pager | awk -v pid="$pid" '
		$1 == "spot-agent" && $4 == pid && $6 ~ /(^|:)shutdown(:|$)/ && $NF == "delay" { found = 1 }
		END { exit !found }'
}

# boot_ct DIR [NSPAWN OPTION...]: boots the container of DIR/root and waits
# for the boot to end and the simulator to answer.
boot_ct() {
	local dir=$1 t0=$SECONDS
	shift
	root=$dir/root
	nspawn_log=$dir/nspawn.log
	machine=spot-sys-$$-$RANDOM
	systemd-nspawn "${nspawn_opts[@]}" -D "$root" -M "$machine" "$@" --console=passive -b \
		>"$nspawn_log" 2>&1 &
	nspawn_pid=$!
	wait_for "the container's systemd" find_leader
	wait_for "the container to finish booting" booted
	ok "container $machine booted in $(elapsed "$t0") ($(in_ct systemctl is-system-running || true))"
	in_ct ip -brief addr show lo | grep -q '169.254.169.254' || fail "169.254.169.254 is not on lo"
	wait_for "the simulator on 169.254.169.254:80" sim -o /dev/null http://169.254.169.254/__sim/state
	ok "simulator answers on 169.254.169.254:80"
}

# --- install: the package enables and starts the service --------------------

scenario_install() {
	say "== install"
	prepare_root "$work/install"
	boot_ct "$work/install"
	t0=$SECONDS
	[ "$(logind_prop InhibitDelayMaxUSec)" = "t 5000000" ] || fail "logind's delay is not its default 5 s before the install"
	in_ct dpkg -i /root/spot-agent.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
	ok "dpkg -i in $(elapsed "$t0")"
	# logind started before the package: its postinst restarts it, once the
	# value changed, and not on a reinstall that changes nothing.
	grep -q 'restarting systemd-logind: its InhibitDelayMaxSec becomes 30 s' "$work/dpkg.log" ||
		{ cat "$work/dpkg.log" >&3; fail "the postinst did not restart systemd-logind"; }
	[ "$(logind_prop InhibitDelayMaxUSec)" = "t $LOGIND_DELAY_USEC" ] ||
		fail "logind's InhibitDelayMaxUSec after the install: $(logind_prop InhibitDelayMaxUSec)"
	in_ct dpkg -i /root/spot-agent.deb >"$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log" >&3; fail "dpkg -i again"; }
	grep -q 'restarting systemd-logind' "$work/dpkg2.log" && fail "a reinstall restarted systemd-logind again"
	ok "postinst: systemd-logind restarted to take InhibitDelayMaxSec=30, not again on a reinstall"
	[ "$(in_ct systemctl is-enabled spot-agent.service)" = enabled ] || fail "spot-agent.service is not enabled"
	[ "$(in_ct systemctl is-enabled spot-agent.socket || true)" = disabled ] || fail "spot-agent.socket should not be enabled"
	wait_for "spot-agent.service active (READY=1)" active
	status_text=$(in_ct systemctl show -p StatusText --value spot-agent.service)
	[ -n "$status_text" ] || fail "no STATUS= text from the agent"
	ok "spot-agent.service enabled and active (Type=notify: READY=1 received); StatusText: $status_text"
	wait_for "spot-agent's delay inhibitor lock for shutdown in logind" holds_lock
	ok "spot-agent holds a logind delay lock for shutdown"

	http_code() { in_ct curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:9470$1"; }
	healthy() { [ "$(http_code /healthz)" = 200 ]; }
	wait_for "/healthz 200" healthy
	ok "curl http://127.0.0.1:9470/healthz: 200"

	# The example drop-in of the sandbox: a checkpoint directory under /home
	# becomes writable (packaging/systemd/spot-agent-sandbox.conf).
	mkdir -p "$root/etc/systemd/system/spot-agent.service.d" "$root/home/trainer/checkpoints" "$root/data"
	cp packaging/systemd/spot-agent-sandbox.conf "$root/etc/systemd/system/spot-agent.service.d/50-sandbox.conf"
	in_ct systemctl daemon-reload
	in_ct systemctl restart spot-agent.service || fail "restart with the example drop-in"
	wait_for "spot-agent.service active with the example drop-in" active

	# A Preempt: hooks in order, approval. Their records go to /var/lib:
	# the agent's /tmp and /var/tmp are its own (PrivateTmp=yes).

	for name in 10-x 20-y; do
		cat >"$root/etc/spot-agent.d/$name" <<EOF
#!/bin/sh
echo "hook $name: \$SPOT_EVENT_TYPE \$SPOT_EVENT_ID timeout \$SPOT_HOOK_TIMEOUT"
mkdir -p /var/lib/spot-test
cat > /var/lib/spot-test/stdin-$name.json
echo $name >> /var/lib/spot-test/order
EOF
		chmod 0755 "$root/etc/spot-agent.d/$name"
	done
	# Between them, what the sandbox lets a hook do: "<probe> yes|no" lines.
	cat >"$root/etc/spot-agent.d/15-sandbox" <<'EOF'
#!/bin/sh
out=/var/lib/spot-test/sandbox
try() {
	name=$1 tool=$2
	shift
	if ! command -v "$tool" >/dev/null; then echo "$name missing"
	elif "$@" >/dev/null 2>&1; then echo "$name yes"
	else echo "$name no"; fi >>"$out"
}
try var-lib touch /var/lib/spot-test/probe
try srv touch /srv/spot-probe
try data-disk touch /data/spot-probe
try home-drop-in touch /home/trainer/checkpoints/probe
try home touch /home/trainer/probe
try root-home touch /root/spot-probe
try usr touch /usr/spot-probe
try etc touch /etc/spot-probe
try own-tmp touch /var/tmp/spot-probe
try systemctl systemctl is-active spot-agent.service
try journal-flush journalctl --flush
try network curl -fsS --noproxy '*' -o /dev/null -H Metadata:true \
	'http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01'
try namespace unshare --net true
try mount mount -t tmpfs none /mnt
try write-exec python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=7)'
cat >/dev/null
EOF
	chmod 0755 "$root/etc/spot-agent.d/15-sandbox"
	rm -rf "$root/var/lib/spot-test"

	t0=$SECONDS
	created=$(sim -d '{"type":"Preempt","resources":["agent-vm0"],"not_before_in":30}' \
		http://169.254.169.254/__sim/events) || fail "POST /__sim/events"
	event_id=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
	say "Preempt $event_id created, NotBefore in 30 s"
	approved() { sim http://169.254.169.254/__sim/approvals | grep -qi "\"$event_id\""; }
	wait_for "approval of $event_id" approved
	ok "event approved $(elapsed "$t0") after creation"
	order=$(in_ct cat /var/lib/spot-test/order | tr '\n' ' ')
	[ "$order" = "10-x 20-y " ] || fail "hooks ran as '$order', expected '10-x 20-y '"
	ok "hooks ran once each, in order: $order"
	sandbox=$(in_ct cat /var/lib/spot-test/sandbox | tr '\n' ' ')
	want="var-lib yes srv yes data-disk yes home-drop-in yes home no root-home no usr no etc no own-tmp yes"
	want="$want systemctl yes journal-flush yes network yes namespace no mount no write-exec no "
	[ "$sandbox" = "$want" ] || fail "the hooks' sandbox: '$sandbox', expected '$want'"
	in_ct test -e /var/tmp/spot-probe && fail "a hook's /var/tmp file is visible outside the agent"
	ok "the hooks' sandbox: writes /var/lib, /srv, /data and the drop-in's /home path, not /usr, /etc or" \
		"homes; its own /var/tmp; systemctl, journalctl --flush and the network work; no namespaces," \
		"mounts or W+X memory"
	in_ct python3 - "$event_id" <<'EOF' || fail "the event on the hooks' stdin is not as expected"
import json, sys
ev = json.load(open("/var/lib/spot-test/stdin-10-x.json"))
assert ev["id"].lower() == sys.argv[1].lower(), ev
assert ev["type"] == "Preempt" and ev["drill"] is False and ev["deadline_usec"] > 0, ev
assert "agent-vm0" in ev["resources"], ev
EOF
	ok "hook stdin: the event as JSON (id, type, resources, deadline, drill)"
	# grep reads to the end (no -q): with pipefail, a journalctl cut short
	# by SIGPIPE would fail the pipeline.
	hook_logged() { in_ct journalctl --no-pager -u spot-agent SPOT_HOOK=10-x | grep "hook 10-x: Preempt" >/dev/null; }
	wait_for "the hook's output in the journal" hook_logged
	ok "journalctl -u spot-agent SPOT_HOOK=10-x: $(in_ct journalctl --no-pager -o cat -u spot-agent SPOT_HOOK=10-x | grep -m1 'hook 10-x')"
	done_state() {
		in_ct curl -s --noproxy '*' http://127.0.0.1:9470/v1/status | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["state"] == "done", s["state"]
assert [h["result"] for h in s["hooks"]] == ["ok", "ok", "ok"], s["hooks"]'
	}
	wait_for "/v1/status state done with every hook ok" done_state
	ok "/v1/status: state done, hooks ok"

	# drill --sandbox: the hooks in the installed unit's sandbox (with the
	# example drop-in), read from the unit. A hook writing below /root
	# passes a plain drill and fails in the sandbox (ProtectHome=read-only).
	mkdir -p "$root/etc/spot-drill.d"
	cat >"$root/etc/spot-drill.d/10-root-home" <<'EOF'
#!/bin/sh
touch /root/spot-drill-probe && echo "wrote /root/spot-drill-probe"
EOF
	chmod 0755 "$root/etc/spot-drill.d/10-root-home"
	drill_args="drill --hooks-dir /etc/spot-drill.d --hooks-lib-dir none --notice 20"
	# shellcheck disable=SC2086 # word splitting of drill_args is wanted
	out=$(in_ct spot-agent $drill_args 2>&1) || { say "$out" >&3; fail "spot-agent drill (no sandbox)"; }
	printf '%s\n' "$out" | grep -Eq '^10-root-home +ok +0 ' ||
		{ say "$out" >&3; fail "plain drill: 10-root-home not ok"; }
	in_ct rm -f /root/spot-drill-probe
	rc=0
	# shellcheck disable=SC2086
	out=$(in_ct spot-agent $drill_args --sandbox 2>&1) || rc=$?
	if [ "$rc" != 1 ] || ! printf '%s\n' "$out" | grep -Eq '^10-root-home +failed +1 ' ||
		! printf '%s\n' "$out" | grep -q '^drill: in the sandbox of spot-agent.service (' ||
		! printf '%s\n' "$out" | grep -q 'Read-only file system' ||
		in_ct test -e /root/spot-drill-probe; then
		say "$out" >&3
		fail "drill --sandbox: exit $rc; the hook should fail to write /root in the unit's sandbox"
	fi
	ok "drill --sandbox: the hook writing /root fails in the unit's sandbox, passes without;" \
		"$(printf '%s\n' "$out" | grep -m1 '^drill: in the sandbox')"
	rm -rf "$root/etc/spot-drill.d"

	# The watchdog restarts a stopped agent.

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
	in_ct journalctl --no-pager -u spot-agent | grep 'Watchdog timeout' >/dev/null ||
		fail "no watchdog timeout in the journal"
	[ "$(in_ct systemctl show -p NRestarts --value spot-agent.service)" -gt "$restarts" ] ||
		fail "NRestarts did not grow"
	ok "SIGSTOPped agent (pid $pid) killed by the watchdog (WatchdogSec=4s) and restarted in $(elapsed "$t0")"
	rm -rf "$root/etc/systemd/system/spot-agent.service.d"
	in_ct systemctl daemon-reload

	# A clean stop.

	wait_for "spot-agent.service active before the stop" active
	in_ct systemctl stop spot-agent.service || fail "systemctl stop failed"
	state=$(in_ct systemctl is-active spot-agent.service || true)
	result=$(in_ct systemctl show -p Result --value spot-agent.service)
	status=$(in_ct systemctl show -p ExecMainStatus --value spot-agent.service)
	if [ "$state" != inactive ] || [ "$result" != success ] || [ "$status" != 0 ]; then
		fail "after stop: $state, result $result, exit status $status"
	fi
	ok "systemctl stop: inactive, result success, exit status 0"
	in_ct systemd-inhibit --list --no-legend --no-pager | awk '$1 == "spot-agent" { exit 1 }' ||
		fail "spot-agent's inhibitor lock outlived the agent"
	ok "its inhibitor lock went with it"

	# Purge leaves nothing behind.

	rm -f "$root/etc/spot-agent.d/10-x" "$root/etc/spot-agent.d/15-sandbox" "$root/etc/spot-agent.d/20-y"
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
	stop_ct
	[ "${SPOT_TEST_KEEP:-0}" = 1 ] || rm -rf "$work/install"
}

# --- shutdown: logind waits for the hooks ------------------------------------

# The image the shutdown scenarios boot copies of: the package installed
# the way images are baked, by dpkg in a container that is not booted (its
# postinst enables the service, nothing starts it), so that logind reads the
# package's InhibitDelayMaxSec drop-in when the container boots. The hooks
# record their start and end (Unix time, the host's clock) and environment
# in /spot-rec, a host directory bound into the container, read once the
# container is gone.
make_image() {
	local t0=$SECONDS name
	image=$work/image
	prepare_root "$image"
	systemd-nspawn "${nspawn_opts[@]}" -D "$image/root" -M "spot-img-$$-$RANDOM" --as-pid2 \
		dpkg -i /root/spot-agent.deb >"$image/dpkg.log" 2>&1 ||
		{ cat "$image/dpkg.log" >&2; fail "dpkg -i in the image"; }
	[ -L "$image/root/etc/systemd/system/multi-user.target.wants/spot-agent.service" ] ||
		fail "dpkg -i in the image did not enable spot-agent.service"
	for name in 10-first 20-sleep 30-last; do
		cat >"$image/root/etc/spot-agent.d/$name" <<'EOF'
#!/bin/sh
# Test hook: its start, environment and end, recorded in /spot-rec. It
# runs by descriptor ($0 is /dev/fd/3): its own name is in SPOT_HOOK_PATH.
n=${SPOT_HOOK_PATH##*/}
echo "hook $n: $SPOT_EVENT_TYPE $SPOT_EVENT_ID source $SPOT_EVENT_SOURCE timeout $SPOT_HOOK_TIMEOUT"
printf '%s start %s\n' "$n" "$(date +%s.%N)" >>/spot-rec/hooks
env >"/spot-rec/env-$n"
if [ "$n" = 20-sleep ]; then sleep 3; fi
printf '%s end %s\n' "$n" "$(date +%s.%N)" >>/spot-rec/hooks
EOF
		chmod 0755 "$image/root/etc/spot-agent.d/$name"
	done
	mkdir -p "$image/root/spot-rec"
	ok "image: the package installed before the first boot, hooks 10-first 20-sleep 30-last ($(elapsed "$t0"))"
}

# copy_image NAME: dir=$work/NAME with root/, a copy of the image, and rec/,
# the hooks' record.
copy_image() {
	[ -n "${image:-}" ] || make_image
	dir=$work/$1
	rec=$dir/rec
	mkdir -p "$rec"
	cp -a --reflink=auto "$image/root" "$dir/root"
}

# boot_image: boots the copy with the record bound in, and checks what the
# shutdown scenarios rely on: logind answers with the package's delay, the
# agent runs and holds its lock. boot_tag: the boot id's first 8 hex digits.
boot_image() {
	local delay pid
	boot_ct "$dir" --bind="$rec:/spot-rec"
	delay=$(logind_prop InhibitDelayMaxUSec) || fail "logind does not answer on the system bus"
	[ "$delay" = "t $LOGIND_DELAY_USEC" ] ||
		fail "logind's InhibitDelayMaxUSec is ${delay#t } µs, not $LOGIND_DELAY_USEC: /usr/lib/systemd/logind.conf.d/zz-spot-agent.conf not in the package, or overridden"
	ok "logind answers: InhibitDelayMaxSec=$((LOGIND_DELAY_USEC / 1000000)) (the package's drop-in)"
	wait_for "spot-agent.service active" active
	wait_for "spot-agent's delay inhibitor lock for shutdown in logind" holds_lock
	ok "systemd-inhibit --list: $(in_ct systemd-inhibit --list --no-legend --no-pager | grep '^spot-agent' | tr -s ' ')"
	# The boot id as the agent reads it: nspawn lays a boot id of its own
	# over the container's /proc/sys/kernel/random/boot_id, which the
	# agent's mount namespace (ProtectControlGroups=yes) does not see.
	pid=$(in_ct systemctl show -p MainPID --value spot-agent.service)
	boot_tag=$(in_ct cat "/proc/$pid/root/proc/sys/kernel/random/boot_id" | tr -d '-' | cut -c1-8)
}

poweroff_ct() {
	t_poweroff=$(now)
	in_ct systemctl poweroff || fail "systemctl poweroff in the container"
}

# Waits (at most WAIT_MAX seconds) for nspawn to exit once the container has
# powered off; t_off: when it did.
wait_off() {
	local rc=0
	timeout "$WAIT_MAX" tail --pid="$nspawn_pid" -s 0.05 -f /dev/null 2>/dev/null || rc=$?
	t_off=$(now)
	[ "$rc" = 0 ] || fail "the container did not power off within ${WAIT_MAX}s of the poweroff"
	rc=0
	wait "$nspawn_pid" || rc=$?
	nspawn_pid=
	leader=
	[ "$rc" = 0 ] || { tail -n 20 "$nspawn_log" >&3; fail "systemd-nspawn exited with status $rc"; }
	ok "the container powered off $(since "$t_poweroff" "$t_off") s after the poweroff"
}

# check_record SCENARIO [OPTION...]: test/system/shutdown-check.py on the
# hooks' record and the journal of the container that is gone.
check_record() {
	local name=$1
	shift
	journalctl --no-pager -D "$root/var/log/journal" -o json >"$dir/journal.json" 2>/dev/null ||
		fail "$name: cannot read the container's journal in $root/var/log/journal"
	python3 test/system/shutdown-check.py --scenario "$name" --rec "$rec" \
		--journal "$dir/journal.json" --poweroff "$t_poweroff" --off "$t_off" \
		--boot-tag "$boot_tag" "$@" || fail "$name: the hooks' record or the journal is not as expected"
	[ "${SPOT_TEST_KEEP:-0}" = 1 ] || rm -rf "$dir"
	rec=
}

scenario_eviction_shutdown() {
	local created event_id running agent
	say "== eviction-shutdown: poweroff while the hooks of an Azure Preempt run"
	copy_image eviction-shutdown
	boot_image
	created=$(sim -d '{"type":"Preempt","resources":["agent-vm0"],"not_before_in":60}' \
		http://169.254.169.254/__sim/events) || fail "POST /__sim/events"
	event_id=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
	say "Preempt $event_id created, NotBefore in 60 s"
	wait_for "the hook 20-sleep to start" grep -q '^20-sleep start' "$rec/hooks"
	poweroff_ct
	preparing() {
		kill -0 "$nspawn_pid" 2>/dev/null || fail "the container went down at once: nothing held the shutdown"
		[ "$(logind_prop PreparingForShutdown)" = "b true" ]
	}
	wait_for "logind to prepare for the shutdown (PrepareForShutdown)" preparing
	running=$(in_ct systemctl is-system-running || true)
	agent=$(in_ct systemctl is-active spot-agent.service || true)
	holds_lock || fail "spot-agent's lock is gone while its hook 20-sleep runs"
	if grep -q '^20-sleep end' "$rec/hooks"; then
		say "note: 20-sleep ended before the state during the delay was read; not checked"
	else
		if [ "$running" != running ] || [ "$agent" != active ]; then
			fail "while 20-sleep runs after the poweroff: system $running, spot-agent $agent; expected running, active"
		fi
		ok "while 20-sleep runs: logind PreparingForShutdown=true, system running, spot-agent active, its lock held"
	fi
	wait_off
	check_record eviction-shutdown --event-id "$event_id"
}

scenario_os_shutdown() {
	say "== os-shutdown: poweroff with no notice"
	copy_image os-shutdown
	boot_image
	poweroff_ct
	wait_off
	check_record os-shutdown
}

scenario_gcp_shutdown() {
	local t_preempt
	say "== gcp-shutdown: GCP preemption and poweroff at the same moment"
	copy_image gcp-shutdown
	printf '# test: watch the GCP metadata server\nprovider = gcp\n' \
		>"$dir/root/etc/spot-agent/spot-agent.conf"
	boot_image
	# Watching: its name known, a hanging GET on instance/preempted waiting.
	gcp_watching() {
		in_ct curl -s --noproxy '*' http://127.0.0.1:9470/v1/status | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert (s["provider"], s["vm_name"]) == ("gcp", "gce-vm0"), (s["provider"], s["vm_name"])' &&
			sim http://169.254.169.254/__sim/gcp |
			python3 -c 'import json, sys; assert json.load(sys.stdin)["waiters"] > 0'
	}
	wait_for "the agent to watch GCP for gce-vm0 (/v1/status, a hanging GET)" gcp_watching
	ok "the agent watches GCP's instance/preempted (hanging GET) for gce-vm0"
	t_preempt=$(now)
	sim -X POST http://169.254.169.254/__sim/gcp/preempt >/dev/null || fail "POST /__sim/gcp/preempt"
	poweroff_ct
	say "instance/preempted TRUE, poweroff $(since "$t_preempt" "$t_poweroff") s later"
	wait_off
	check_record gcp-shutdown --preempt "$t_preempt"
}

# --- cloud-init: the cloud-config at the first boot, offline ---------------

# Runs the installer that spot-agent.yaml wrote; out: its output, rc: its
# exit status.
run_installer() {
	rc=0
	out=$(in_ct /usr/local/sbin/install-spot-agent 2>&1) || rc=$?
}

# set_deb_url URL: DEB_URL= in the installer that spot-agent.yaml wrote.
set_deb_url() {
	local f=$root/usr/local/sbin/install-spot-agent
	grep -q '^DEB_URL=' "$f" || fail "no DEB_URL= line in $f"
	sed -i "s|^DEB_URL=.*|DEB_URL=\"$1\"|" "$f"
}

scenario_cloud_init() {
	local r seed t0 v status_text out rc WAIT_MAX=240
	say "== cloud-init: first boot with cloud-init/spot-agent.yaml as user data, no network"
	dir=$work/cloud-init
	prepare_root "$dir" "$ci_base"
	r=$dir/root
	[ ! -e "$r/usr/bin/spot-agent" ] || fail "spot-agent is in the image before its first boot"
	# The image as cloud-init/README.md has it baked: the .deb in the cache.
	mkdir -p "$r/var/cache/spot-agent"
	cp "$deb" "$r/var/cache/spot-agent/spot-agent.deb"
	# A default locale, as Debian's cloud images have: without one, the
	# locale module of Debian 12's cloud-init fails (it asks locale-gen for
	# en_US.UTF-8, which Debian's locale-gen does not take as an argument).
	printf 'LANG=C.UTF-8\n' >"$r/etc/default/locale"
	seed=$r/var/lib/cloud/seed/nocloud
	mkdir -p "$seed"
	printf 'instance-id: spot-test-%s\n' "$$" >"$seed/meta-data"
	cp cloud-init/spot-agent.yaml "$seed/user-data"
	cat >"$r/etc/cloud/cloud.cfg.d/90-spot-test.cfg" <<'EOF'
# Test: the NoCloud seed and nothing else; the container's only link is lo.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
EOF
	# The metadata service is up before cloud-init, as on a cloud VM: the
	# simulator listens before bootcmd runs.
	mkdir -p "$r/etc/systemd/system/imds-sim.service.d"
	cat >"$r/etc/systemd/system/imds-sim.service.d/50-before-cloud-init.conf" <<'EOF'
[Unit]
DefaultDependencies=no
After=local-fs.target
Before=cloud-init.service shutdown.target
Conflicts=shutdown.target

[Service]
ExecStartPost=/bin/sh -c 'until [ -s /run/imds-sim.port ]; do sleep 0.1; done'
EOF
	t0=$SECONDS
	boot_ct "$dir"
	[ -z "$(in_ct ip -o link show | awk -F': ' '$2 != "lo"')" ] || fail "the container has a link besides lo"
	out=$(in_ct cloud-init status --wait --long 2>&1) || { say "$out" >&3; fail "cloud-init status --wait"; }
	printf '%s\n' "$out" | grep -qx 'status: done' || { say "$out" >&3; fail "cloud-init status is not done"; }
	in_ct cat /run/cloud-init/result.json >"$dir/result.json" || fail "no /run/cloud-init/result.json"
	in_ct cat /run/cloud-init/status.json >"$dir/status.json" || fail "no /run/cloud-init/status.json"
	v=$(python3 - "$dir" <<'EOF'
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/result.json"))["v1"]
assert "NoCloud" in r["datasource"], r
assert r["errors"] == [], r["errors"]
st = json.load(open(d + "/status.json"))["v1"]
for stage in ("init-local", "init", "modules-config", "modules-final"):
    assert st[stage]["finished"] and st[stage]["errors"] == [], (stage, st[stage])
print(r["datasource"])
EOF
) || { in_ct tail -n 40 /var/log/cloud-init-output.log >&3 2>&1 || true; fail "cloud-init reported errors"; }
	ok "first boot in $(elapsed "$t0"): cloud-init status --wait: done, no errors in result.json and status.json ($v)"

	# bootcmd: the early Scheduled Events call, by curl.
	early_call() {
		sim http://169.254.169.254/__sim/requests | python3 -c '
import json, sys
assert any(r["method"] == "GET" and r["path"] == "/metadata/scheduledevents"
           and r["query"].get("api-version") == ["2020-07-01"]
           and r["headers"].get("metadata") == "true"
           and r["headers"].get("user-agent", "").startswith("curl/")
           for r in json.load(sys.stdin))'
	}
	wait_for "bootcmd's Scheduled Events call (curl) at the simulator" early_call
	ok "bootcmd: GET /metadata/scheduledevents?api-version=2020-07-01 with Metadata: true, by curl"

	# runcmd: the package from the cache, the service, the config of write_files.
	in_ct grep -q '^install-spot-agent: installing /var/cache/spot-agent/spot-agent.deb from the image$' \
		/var/log/cloud-init-output.log || fail "the installer's line is not in /var/log/cloud-init-output.log"
	# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
	v=$(in_ct dpkg-query -W -f='${Status} ${Version}' spot-agent) || fail "spot-agent is not installed"
	[ "$v" = "install ok installed $(dpkg-deb -f "$deb" Version)" ] || fail "dpkg-query: $v"
	ok "runcmd installed the cached .deb with no network: $v"
	[ "$(in_ct systemctl is-enabled spot-agent.service)" = enabled ] || fail "spot-agent.service is not enabled"
	wait_for "spot-agent.service active" active
	status_text=$(in_ct systemctl show -p StatusText --value spot-agent.service)
	ok "spot-agent.service enabled and active; StatusText: $status_text"
	grep -qx 'hook-timeout = 20' "$r/etc/spot-agent/spot-agent.conf" ||
		fail "/etc/spot-agent/spot-agent.conf is not the one of write_files (--force-confold)"
	out=$(in_ct spot-agent check 2>&1) || { say "$out" >&3; fail "spot-agent check"; }
	for v in 'provider = azure' 'margin = 3' 'hook-timeout = 20' 'events = Preempt,Terminate,Shutdown' \
		'# run   /etc/spot-agent.d/10-checkpoint'; do
		printf '%s\n' "$out" | grep -qxF "$v" || { say "$out" >&3; fail "spot-agent check: no line '$v'"; }
	done
	ok "spot-agent check: passes; the config of write_files, the hook 10-checkpoint"
	wait_for "spot-agent's delay inhibitor lock for shutdown in logind" holds_lock
	v=$(logind_prop InhibitDelayMaxUSec) || fail "logind does not answer on the system bus"
	[ "$v" = "t $LOGIND_DELAY_USEC" ] ||
		fail "logind's InhibitDelayMaxUSec is ${v#t } µs after the first boot, not the package's $LOGIND_DELAY_USEC"
	ok "logind: InhibitDelayMaxSec=$((LOGIND_DELAY_USEC / 1000000)) at the first boot; spot-agent holds its delay lock"

	# A drill runs the hook of write_files.
	out=$(in_ct spot-agent drill 2>&1) || { say "$out" >&3; fail "spot-agent drill"; }
	printf '%s\n' "$out" | grep -Eq '^10-checkpoint +ok +0 ' ||
		{ say "$out" >&3; fail "spot-agent drill: no report line '10-checkpoint ok 0'"; }
	printf '%s\n' "$out" | grep -Eq '\[drill-[0-9]+ 10-checkpoint\] eviction: Preempt drill-[0-9]+, deadline [0-9]+, timeout 20s$' ||
		{ say "$out" >&3; fail "spot-agent drill: the hook's line is not in its output"; }
	ok "spot-agent drill: 10-checkpoint ok: $(printf '%s\n' "$out" | grep -o 'eviction: Preempt.*')"

	# The installer without a cached .deb: DEB_URL must be set, and http(s).
	rm "$r/var/cache/spot-agent/spot-agent.deb"
	run_installer
	if [ "$rc" != 2 ] || [ "$out" != "install-spot-agent: no /var/cache/spot-agent/spot-agent.deb in the image and DEB_URL is not set: set DEB_URL in install-spot-agent (write_files of spot-agent.yaml)" ]; then
		say "$out" >&3
		fail "install-spot-agent with no cached .deb and no DEB_URL: exit $rc"
	fi
	ok "no cached .deb, DEB_URL not set: exit 2, $out"
	set_deb_url "ftp://127.0.0.1/spot-agent.deb"
	run_installer
	if [ "$rc" != 2 ] || [ "$out" != "install-spot-agent: DEB_URL 'ftp://127.0.0.1/spot-agent.deb' is not an http:// or https:// URL" ]; then
		say "$out" >&3
		fail "install-spot-agent with an ftp:// DEB_URL: exit $rc"
	fi
	ok "DEB_URL ftp://: exit 2, $out"

	# ... and with DEB_URL set it downloads the .deb and installs it (after
	# dpkg -r, which keeps the config).
	in_ct dpkg -r spot-agent >"$dir/remove.log" 2>&1 || { cat "$dir/remove.log" >&3; fail "dpkg -r spot-agent"; }
	in_ct systemd-run --quiet --unit=spot-test-http \
		python3 -m http.server --bind 127.0.0.1 --directory /root 8080 || fail "systemd-run the download server"
	wait_for "the download server on 127.0.0.1:8080" in_ct curl -fsS -o /dev/null http://127.0.0.1:8080/
	set_deb_url "http://127.0.0.1:8080/spot-agent.deb"
	run_installer
	[ "$rc" = 0 ] || { say "$out" >&3; fail "install-spot-agent with DEB_URL: exit $rc"; }
	printf '%s\n' "$out" | grep -qx 'install-spot-agent: downloading http://127.0.0.1:8080/spot-agent.deb' ||
		{ say "$out" >&3; fail "install-spot-agent did not say it downloads"; }
	cmp -s "$r/var/cache/spot-agent/spot-agent.deb" "$deb" || fail "the downloaded .deb differs from $deb"
	# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
	v=$(in_ct dpkg-query -W -f='${Status}' spot-agent) || fail "spot-agent is not installed after the download"
	[ "$v" = "install ok installed" ] || fail "dpkg-query after the download: $v"
	grep -qx 'hook-timeout = 20' "$r/etc/spot-agent/spot-agent.conf" || fail "the reinstall replaced the config"
	wait_for "spot-agent.service active after the download" active
	ok "DEB_URL set: downloaded to the cache, installed, config kept, service active"
	in_ct systemctl stop spot-test-http || true
	stop_ct
	[ "${SPOT_TEST_KEEP:-0}" = 1 ] || rm -rf "$dir"
}

if want install; then scenario_install; fi
if want eviction-shutdown; then scenario_eviction_shutdown; fi
if want os-shutdown; then scenario_os_shutdown; fi
if want gcp-shutdown; then scenario_gcp_shutdown; fi
if want cloud-init; then scenario_cloud_init; fi

say "check-system: all passed in $(elapsed "$t_start")"
