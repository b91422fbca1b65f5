#!/bin/sh
# Runs every example hook in hooks/ the way the agent does (clean environment,
# cwd /, the event on stdin) with stub commands first on PATH. Each stub
# appends its argv to a log (curl also its stdin), so the checks below see
# which commands ran, in what order, with what time bounds, and that a drill
# changes nothing. Prints "N passed, N failed" last; exits 1 on a failure.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
hooks=$top/hooks
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
pass=0
fail=0
secret=s3cr3t-T0KEN-9f2b
url="https://hooks.example.invalid/services/$secret"

# --- stubs ------------------------------------------------------------------

mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/var"
# make_stub NAME BODY: a stub that logs "NAME ARG..." and then runs BODY.
# STUB_HANG=NAME makes that stub hang (it is killed by its time bound).
make_stub() {
	cat >"$tmp/bin/$1" <<EOF
#!/bin/sh
{ printf '%s' "$1"; for a; do printf ' %s' "\$a"; done; echo; } >>"\$STUB_LOG"
[ "\${STUB_HANG:-}" = "$1" ] && exec sleep 30
$2
exit 0
EOF
	chmod 755 "$tmp/bin/$1"
}
# The stub bodies are code for the stubs, expanded when they run.
# shellcheck disable=SC2016
make_stub systemctl '
case $1 in
is-active)
	for a; do u=$a; done
	case " ${STUB_ACTIVE:-} " in *" $u "*) exit 0 ;; esac
	exit 3 ;;
kill) [ -n "${STUB_MARKER:-}" ] && : >"$STUB_MARKER" ;;
esac'
# shellcheck disable=SC2016
make_stub curl '
prev=
for a; do
	[ "$prev" = --data-binary ] && printf "%s\n" "$a" >"$STUB_LOG.payload"
	prev=$a
done
cat >>"$STUB_LOG.stdin"
printf "%s" "${STUB_HTTP:-200}"
exit "${STUB_CURL_EXIT:-0}"'
make_stub consul ''
make_stub kubectl ''
make_stub journalctl ''
make_stub uname 'echo stub-host'

cat >"$tmp/event.json" <<'EOF'
{"id":"A1B2C3D4-0000-4000-8000-000000000001","type":"Preempt","status":"Scheduled","source":"Platform","not_before":"2030-01-01T00:00:30.000000Z","not_before_usec":1893456030000000,"resources":["vm-test-1"],"description":null,"duration_s":null,"provider":"azure","deadline":"2030-01-01T00:00:28.000000Z","deadline_usec":1893456028000000,"drill":false}
EOF

# --- running a hook ---------------------------------------------------------

# run_hook HOOK [VAR=VALUE...]: runs hooks/HOOK as the agent would; later
# assignments override the defaults. Sets $status and $elapsed (ms).
run_hook() {
	h=$1
	shift
	: >"$tmp/log"
	: >"$tmp/log.stdin"
	: >"$tmp/log.payload"
	: >"$tmp/report"
	now=$(date +%s)
	t0=$(date +%s%N)
	(cd / && env -i PATH="$tmp/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		LANG=C.UTF-8 TZ=UTC SPOT_EVENT_ID=A1B2C3D4-0000-4000-8000-000000000001 \
		SPOT_EVENT_TYPE=Preempt SPOT_EVENT_STATUS=Scheduled SPOT_EVENT_SOURCE=Platform \
		SPOT_NOT_BEFORE=2030-01-01T00:00:30Z SPOT_DEADLINE=$((now + 25)) SPOT_HOOK_TIMEOUT=20 \
		SPOT_PROVIDER=azure SPOT_VM_NAME=vm-test-1 SPOT_DRILL=0 SPOT_REPORT="$tmp/report" \
		SPOT_HOOK_ENV_DIR="$tmp/etc" STUB_LOG="$tmp/log" "$@" \
		"$hooks/$h" <"$tmp/event.json" >"$tmp/out" 2>"$tmp/err")
	status=$?
	elapsed=$((($(date +%s%N) - t0) / 1000000))
}

# env_file NAME: the env file of hook NAME from stdin (an empty stdin removes it).
env_file() {
	cat >"$tmp/etc/$1.env"
	[ -s "$tmp/etc/$1.env" ] || rm -f "$tmp/etc/$1.env"
}

# --- assertions -------------------------------------------------------------

check() {
	what=$1
	shift
	if "$@"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		printf 'FAIL: %s\n' "$what"
		printf '  status %s, %s ms; commands:\n' "$status" "$elapsed"
		sed 's/^/    | /' "$tmp/log"
		printf '  output:\n'
		cat "$tmp/out" "$tmp/err" | sed 's/^/    > /'
	fi
}
status_is() { [ "$status" = "$1" ]; }
# ran REGEX: some stub call matches (the line is "NAME ARG...").
ran() { grep -Eq -- "$1" "$tmp/log"; }
not_ran() { ! grep -Eq -- "$1" "$tmp/log"; }
count_is() { [ "$(grep -Ec -- "$1" "$tmp/log")" = "$2" ]; }
# before A B: the first call matching A comes before the first matching B.
before() {
	a=$(grep -En -- "$1" "$tmp/log" | head -n1 | cut -d: -f1)
	b=$(grep -En -- "$2" "$tmp/log" | head -n1 | cut -d: -f1)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}
said() { cat "$tmp/out" "$tmp/err" | grep -Fq -- "$1"; }
# reported KEY MIN MAX: the report file has KEY=N once, MIN <= N <= MAX.
reported() {
	[ "$(grep -c -- "^$1=" "$tmp/report")" = 1 ] || return 1
	v=$(sed -n "s/^$1=//p" "$tmp/report")
	[ "$v" -ge "$2" ] && [ "$v" -le "$3" ]
}
report_empty() { [ ! -s "$tmp/report" ]; }
not_said() { ! said "$1"; }
faster_than() { [ "$elapsed" -lt "$1" ]; }
secret_hidden() {
	! grep -Fq -- "$secret" "$tmp/out" "$tmp/err" "$tmp/log"
}
secret_on_stdin() { grep -Fq "url = \"$url\"" "$tmp/log.stdin"; }
payload_has() { grep -Fq -- "$1" "$tmp/log.payload"; }
payload_is_json() { python3 -m json.tool "$tmp/log.payload" >/dev/null 2>&1; }
# Nothing that changes the machine or the cluster ran.
harmless() {
	not_ran '^systemctl (kill|stop|start|restart|reload)' &&
		not_ran '^consul maint .*-enable' &&
		not_ran '^journalctl .*--(flush|sync)' &&
		! grep -E '^kubectl .*(cordon|drain|taint|delete)' "$tmp/log" | grep -vq -- '--dry-run=server'
}

# --- 05-notify --------------------------------------------------------------

printf 'NOTIFY_URL=%s\nNOTIFY_FORMAT=slack\n' "$url" | env_file notify
run_hook 05-notify SPOT_HOOK_TIMEOUT=7
check "notify: exit 0" status_is 0
check "notify: one curl call" count_is '^curl ' 1
check "notify: URL passed as a config on stdin" ran '^curl -q -K - '
check "notify: --max-time is the budget less 1 s" ran '^curl .* --max-time 6 '
check "notify: URL given to curl on stdin" secret_on_stdin
check "notify: URL not in output, argv or ps" secret_hidden
check "notify: slack payload is JSON" payload_is_json
check "notify: slack payload names VM and type" payload_has '{"text":"Spot Preempt notice for vm-test-1 (azure)'
check "notify: says it posted" said "posted the slack message (HTTP 200)"

run_hook 05-notify SPOT_HOOK_TIMEOUT=60
check "notify: --max-time capped by NOTIFY_MAX_TIME default 10" ran '^curl .* --max-time 10 '

run_hook 05-notify SPOT_HOOK_TIMEOUT=60 SPOT_DEADLINE=$(($(date +%s) + 5))
check "notify: --max-time bounded by SPOT_DEADLINE" ran '^curl .* --max-time [34] '

printf 'NOTIFY_URL=%s\nNOTIFY_FORMAT=teams\n' "$url" | env_file notify
run_hook 05-notify SPOT_VM_NAME='vm "quoted" \ name'
check "notify: teams exit 0" status_is 0
check "notify: teams payload is JSON despite quotes" payload_is_json
check "notify: teams payload is an Adaptive Card" payload_has '"type":"AdaptiveCard"'

printf 'NOTIFY_URL=%s\n' "$url" | env_file notify
run_hook 05-notify
check "notify: generic payload is JSON" payload_is_json
check "notify: generic payload carries the event" payload_has '"event":{"id":"A1B2C3D4-0000-4000-8000-000000000001","type":"Preempt"'
check "notify: generic payload not a drill" payload_has '"drill":false'

run_hook 05-notify SPOT_DRILL=1
check "notify: drill sends by default" count_is '^curl ' 1
check "notify: drill message marked" payload_has '"text":"[DRILL] Spot Preempt'
check "notify: drill flag in payload" payload_has '"drill":true'
check "notify: drill keeps the URL hidden" secret_hidden

printf 'NOTIFY_URL=%s\nNOTIFY_IN_DRILL=no\n' "$url" | env_file notify
run_hook 05-notify SPOT_DRILL=1
check "notify: NOTIFY_IN_DRILL=no exits 0" status_is 0
check "notify: NOTIFY_IN_DRILL=no sends nothing" count_is '^curl ' 0
check "notify: NOTIFY_IN_DRILL=no says so" said "not sent"
check "notify: NOTIFY_IN_DRILL=no keeps the URL hidden" secret_hidden

printf 'NOTIFY_URL=%s\n' "$url" | env_file notify
run_hook 05-notify STUB_CURL_EXIT=28 STUB_HTTP=000
check "notify: timeout is a failure" status_is 1
check "notify: timeout reported" said "did not answer within"
check "notify: timeout keeps the URL hidden" secret_hidden

run_hook 05-notify SPOT_DEADLINE=$(($(date +%s) - 1))
check "notify: deadline passed is a failure" status_is 1
check "notify: deadline passed sends nothing" count_is '^curl ' 0
check "notify: deadline passed explained" said "only 0s left: nothing sent"

run_hook 05-notify STUB_HTTP=500 STUB_CURL_EXIT=0
check "notify: HTTP 500 is a failure" status_is 1
check "notify: HTTP 500 reported" said "(HTTP 500)"

chmod g+w "$tmp/etc/notify.env"
run_hook 05-notify
check "notify: group-writable env file refused" status_is 1
check "notify: refusal explained" said "refusing $tmp/etc/notify.env"
check "notify: nothing sent with a refused env file" count_is '^curl ' 0
chmod g-w "$tmp/etc/notify.env"

env_file notify </dev/null
run_hook 05-notify
check "notify: missing env file is a failure" status_is 1
check "notify: missing env file named" said "not configured: $tmp/etc/notify.env is missing"
check "notify: missing env file sends nothing" count_is '^curl ' 0

# --- 10-checkpoint ----------------------------------------------------------

marker=$tmp/var/checkpoint.done
printf 'CHECKPOINT_UNIT=trainer.service\nCHECKPOINT_MARKER=%s\n' "$marker" | env_file checkpoint
rm -f "$marker"
run_hook 10-checkpoint STUB_ACTIVE=trainer.service STUB_MARKER="$marker"
check "checkpoint: exit 0 when the marker appears" status_is 0
check "checkpoint: signals the main process with SIGUSR1" \
	ran '^systemctl kill --kill-who=main --signal=SIGUSR1 trainer.service$'
check "checkpoint: checks the unit before signalling" \
	before '^systemctl is-active --quiet trainer.service$' '^systemctl kill'
check "checkpoint: reports the checkpoint" said "checkpoint of trainer.service written"
check "checkpoint: reports no lost work after a checkpoint in time" reported lost_work_seconds 0 2

touch -d '-300 seconds' "$marker"
run_hook 10-checkpoint STUB_ACTIVE=trainer.service SPOT_HOOK_TIMEOUT=2
check "checkpoint: a stale marker does not count" status_is 1
check "checkpoint: the stale marker was removed" test ! -e "$marker"
check "checkpoint: gives up within a 2 s budget" faster_than 2000
check "checkpoint: it did wait before giving up" test "$elapsed" -ge 900
check "checkpoint: says why it gave up" said "did not appear within 1s"
check "checkpoint: reports the stale checkpoint's age as lost work" reported lost_work_seconds 300 310

printf 'CHECKPOINT_UNIT=trainer.service\nCHECKPOINT_MARKER=%s\nCHECKPOINT_SIGNAL=SIGRTMIN+3\nCHECKPOINT_MAX_WAIT=1\n' \
	"$marker" | env_file checkpoint
run_hook 10-checkpoint STUB_ACTIVE=trainer.service SPOT_HOOK_TIMEOUT=20
check "checkpoint: CHECKPOINT_SIGNAL used" ran '^systemctl kill --kill-who=main --signal=SIGRTMIN\+3 trainer.service$'
check "checkpoint: CHECKPOINT_MAX_WAIT bounds the wait" faster_than 2000
check "checkpoint: no marker in time is a failure" status_is 1

run_hook 10-checkpoint STUB_ACTIVE=other.service
check "checkpoint: inactive unit exits 0" status_is 0
check "checkpoint: inactive unit gets no signal" not_ran '^systemctl kill'
check "checkpoint: inactive unit reported" said "trainer.service is not active"
check "checkpoint: inactive unit reports no lost work" report_empty

: >"$marker"
run_hook 10-checkpoint STUB_ACTIVE=trainer.service SPOT_DRILL=1
check "checkpoint: drill exits 0" status_is 0
check "checkpoint: drill is harmless" harmless
check "checkpoint: drill keeps the marker" test -e "$marker"
check "checkpoint: drill looks at the unit" ran '^systemctl is-active --quiet trainer.service$'
check "checkpoint: drill says what it would do" said "would remove a stale $marker"

env_file checkpoint </dev/null
run_hook 10-checkpoint STUB_ACTIVE=trainer.service
check "checkpoint: missing env file is a failure" status_is 1
check "checkpoint: missing env file named" said "not configured: $tmp/etc/checkpoint.env is missing"
check "checkpoint: missing env file signals nothing" count_is '^systemctl ' 0
check "checkpoint: missing env file reports nothing" report_empty

printf 'CHECKPOINT_UNIT=trainer.service\nCHECKPOINT_MARKER=%s\nCHECKPOINT_MAX_WAIT=1\n' "$marker" | env_file checkpoint
rm -f "$marker"
run_hook 10-checkpoint STUB_ACTIVE=trainer.service
check "checkpoint: no checkpoint ever written reports nothing" report_empty
run_hook 10-checkpoint STUB_ACTIVE=trainer.service STUB_MARKER="$marker" SPOT_REPORT=
check "checkpoint: without SPOT_REPORT still exits 0" status_is 0
check "checkpoint: without SPOT_REPORT writes no report" report_empty

# --- 20-deregister ----------------------------------------------------------

printf 'CONSUL_SERVICES="web-1 api-1"\n' | env_file deregister
run_hook 20-deregister
check "deregister: exit 0" status_is 0
check "deregister: web-1 into maintenance" \
	ran '^consul maint -enable -service=web-1 -reason=spot-agent: Preempt A1B2C3D4-0000-4000-8000-000000000001$'
check "deregister: then api-1" before '^consul maint -enable -service=web-1 ' '^consul maint -enable -service=api-1 '

printf 'CONSUL_REASON="spot eviction"\nDEREGISTER_WAIT=60\n' | env_file deregister
run_hook 20-deregister SPOT_HOOK_TIMEOUT=3
check "deregister: node-wide maintenance" ran '^consul maint -enable -reason=spot eviction$'
check "deregister: DEREGISTER_WAIT held within the budget" faster_than 3000
check "deregister: hold within the budget exits 0" status_is 0

run_hook 20-deregister SPOT_HOOK_TIMEOUT=3 STUB_HANG=consul
check "deregister: a hung consul is cut off in the budget" faster_than 3000
check "deregister: a hung consul is a failure" status_is 1

run_hook 20-deregister SPOT_DRILL=1
check "deregister: drill exits 0" status_is 0
check "deregister: drill is harmless" harmless
check "deregister: drill reads the status" ran '^consul maint$'

printf 'CONSUL_SERVICES=web-9\n[ -n "" ] && CONSUL_SERVICES=other\n' | env_file deregister
run_hook 20-deregister
check "deregister: env file ending in a false test still counts" ran '^consul maint -enable -service=web-9 '
check "deregister: ... and is not taken for a missing one" not_said "putting the whole node"

env_file deregister </dev/null
run_hook 20-deregister
check "deregister: no env file exits 0 on defaults" status_is 0
check "deregister: no env file says so" said "no $tmp/etc/deregister.env: putting the whole node into maintenance"
check "deregister: no env file puts the node into maintenance" \
	ran '^consul maint -enable -reason=spot-agent: Preempt A1B2C3D4-0000-4000-8000-000000000001$'

# --- 30-k8s-drain -----------------------------------------------------------

: >"$tmp/etc/kubeconfig"
printf 'K8S_NODE_NAME=node-a\n' | env_file k8s-drain
run_hook 30-k8s-drain
check "k8s: exit 0" status_is 0
check "k8s: cordons the node" ran "^kubectl --kubeconfig=$tmp/etc/kubeconfig --request-timeout=5s cordon node-a\$"
check "k8s: drains the node" ran "^kubectl --kubeconfig=$tmp/etc/kubeconfig --request-timeout=5s drain node-a --ignore-daemonsets --delete-emptydir-data "
check "k8s: cordon before drain" before ' cordon node-a' ' drain node-a'
check "k8s: drain timeout = budget - 2, grace period below it" \
	ran ' drain node-a .* --timeout=(18s --grace-period=17|17s --grace-period=16)$'

printf 'K8S_NODE_NAME=node-a\nK8S_GRACE_PERIOD=5\nK8S_DRAIN_ARGS="--ignore-daemonsets --force"\n' | env_file k8s-drain
run_hook 30-k8s-drain SPOT_HOOK_TIMEOUT=60 SPOT_DEADLINE=$(($(date +%s) + 12))
check "k8s: drain timeout bounded by SPOT_DEADLINE" ran ' drain node-a --ignore-daemonsets --force --timeout=(10|9|8)s --grace-period=5$'

run_hook 30-k8s-drain SPOT_HOOK_TIMEOUT=5
check "k8s: short budget: request timeout 2 s" ran ' --request-timeout=2s cordon node-a$'
check "k8s: short budget: drain timeout 3 s" ran ' drain node-a .* --timeout=[23]s --grace-period=[12]$'

run_hook 30-k8s-drain SPOT_HOOK_TIMEOUT=3
check "k8s: too short a budget is a failure" status_is 1
check "k8s: too short a budget runs nothing" count_is '^kubectl ' 0

run_hook 30-k8s-drain SPOT_DRILL=1
check "k8s: drill exits 0" status_is 0
check "k8s: drill is harmless (server dry run)" harmless
check "k8s: drill cordons in dry run" ran ' cordon node-a --dry-run=server$'
check "k8s: drill drains in dry run" ran ' drain node-a .*--dry-run=server$'

printf 'K8S_DRILL_DRY_RUN=none\n' | env_file k8s-drain
run_hook 30-k8s-drain SPOT_DRILL=1
check "k8s: drill with none calls nothing" count_is '^kubectl ' 0
check "k8s: node name from the host name" said "kubectl cordon stub-host"

env_file k8s-drain </dev/null
run_hook 30-k8s-drain
check "k8s: no env file uses the host name" ran ' cordon stub-host$'
rm -f "$tmp/etc/kubeconfig"
run_hook 30-k8s-drain
check "k8s: no kubeconfig is a failure" status_is 1
check "k8s: no kubeconfig explained" said "not configured: no readable kubeconfig at $tmp/etc/kubeconfig"
check "k8s: no kubeconfig runs nothing" count_is '^kubectl ' 0

# --- recover.d/30-k8s-uncordon ----------------------------------------------

: >"$tmp/etc/kubeconfig"
printf 'K8S_NODE_NAME=node-a\n' | env_file k8s-drain
run_hook recover.d/30-k8s-uncordon SPOT_PHASE=recover SPOT_RECOVER_REASON=cancelled SPOT_DOWNTIME=42
check "uncordon: exit 0" status_is 0
check "uncordon: uncordons the node" ran "^kubectl --kubeconfig=$tmp/etc/kubeconfig --request-timeout=9s uncordon node-a\$"
check "uncordon: says why and when" said "node node-a schedulable again (cancelled, 42 s after the eviction)"
run_hook recover.d/30-k8s-uncordon SPOT_PHASE=recover SPOT_DRILL=1
check "uncordon: drill is harmless (server dry run)" ran ' uncordon node-a --dry-run=server$'
run_hook recover.d/30-k8s-uncordon SPOT_PHASE=evict
check "uncordon: refused in the evict phase" status_is 1
check "uncordon: the evict phase runs nothing" count_is '^kubectl ' 0
rm -f "$tmp/etc/kubeconfig"
run_hook recover.d/30-k8s-uncordon SPOT_PHASE=recover
check "uncordon: no kubeconfig is a failure" status_is 1
check "uncordon: no kubeconfig runs nothing" count_is '^kubectl ' 0

# --- 80-flush-logs ----------------------------------------------------------

env_file flush-logs </dev/null
run_hook 80-flush-logs STUB_ACTIVE="rsyslog.service vector.service"
check "flush: exit 0" status_is 0
check "flush: no env file says so" said "no $tmp/etc/flush-logs.env: using the defaults"
check "flush: journal flushed then synced" before '^journalctl --flush$' '^journalctl --sync$'
check "flush: journal before the shippers" before '^journalctl --sync$' '^systemctl kill'
check "flush: rsyslog gets SIGHUP" ran '^systemctl kill --kill-who=main --signal=SIGHUP rsyslog.service$'
check "flush: vector stopped to drain" ran '^systemctl stop vector.service$'
check "flush: inactive fluent-bit left alone" not_ran '^systemctl (stop|kill).*fluent-bit'
check "flush: rsyslog before vector" before 'rsyslog.service$' '^systemctl stop vector.service$'

printf 'FLUSH_SHIPPERS=fluent-bit\nFLUSH_FLUENT_BIT_UNIT=td-agent-bit.service\n' | env_file flush-logs
run_hook 80-flush-logs STUB_ACTIVE="td-agent-bit.service rsyslog.service"
check "flush: FLUSH_FLUENT_BIT_UNIT used" ran '^systemctl stop td-agent-bit.service$'
check "flush: FLUSH_SHIPPERS limits the shippers" not_ran 'rsyslog'

env_file flush-logs </dev/null
run_hook 80-flush-logs STUB_ACTIVE="rsyslog.service" STUB_HANG=journalctl SPOT_HOOK_TIMEOUT=3
check "flush: a hung journalctl is cut off in the budget" faster_than 3000
check "flush: a hung journalctl is a failure" status_is 1

run_hook 80-flush-logs STUB_ACTIVE="rsyslog.service fluent-bit.service vector.service" SPOT_DRILL=1
check "flush: drill exits 0" status_is 0
check "flush: drill is harmless" harmless
check "flush: drill says what it would do" said "drill: would run: systemctl stop fluent-bit.service"

# --- every hook: a drill with full settings changes nothing ------------------

printf 'NOTIFY_URL=%s\nNOTIFY_IN_DRILL=no\n' "$url" | env_file notify
printf 'CHECKPOINT_UNIT=trainer.service\nCHECKPOINT_MARKER=%s\n' "$marker" | env_file checkpoint
: >"$tmp/etc/kubeconfig"
for h in "$hooks"/[0-9][0-9]-*; do
	run_hook "${h##*/}" SPOT_DRILL=1 STUB_ACTIVE="trainer.service rsyslog.service fluent-bit.service vector.service"
	check "${h##*/}: drill exits 0" status_is 0
	check "${h##*/}: drill is harmless" harmless
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
