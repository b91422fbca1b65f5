#!/bin/sh
# check-packaging: lints the man pages, verifies the systemd units and the
# cloud-config, checks what `make install` installs and what `make
# uninstall` leaves, builds the .deb and the .rpm and lints them.
# Run by `make check-packaging` (and so by `make check`) from the top of the
# tree; MAKE, BUILD and VERSION come from the Makefile.
set -eu

MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
VERSION=${VERSION:?VERSION not set}
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spot-check-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

step() { printf '== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; failed=1; }

sh packaging/install-tools.sh packaging

step "mandoc -Tlint -Wwarning man/*"
if out=$(mandoc -Tlint -Wwarning man/* 2>&1) && [ -z "$out" ]; then
	ok "man pages: $(echo man/* | wc -w) clean"
else
	printf '%s\n' "$out" >&2
	fail "man pages"
fi

step "make install DESTDIR (default PREFIX)"
dest=$tmp/dest
if ! $MAKE --no-print-directory install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	fail "make install"
	exit 1
fi
# The expected list, from the same defaults as the Makefile.
{
	echo "/etc/spot-agent/spot-agent.conf"
	echo "/etc/spot-agent.d/README"
	echo "/usr/local/bin/spot-agent"
	echo "/usr/local/lib/spot-agent.d/"
	echo "/usr/local/lib/systemd/catalog/spot-agent.catalog"
	echo "/usr/local/lib/systemd/logind.conf.d/zz-spot-agent.conf"
	echo "/usr/local/lib/systemd/system/spot-agent.service"
	echo "/usr/local/lib/systemd/system/spot-agent.socket"
	echo "/usr/local/share/man/man5/spot-agent.conf.5"
	echo "/usr/local/share/man/man7/spot-agent-hooks.7"
	echo "/usr/local/share/man/man8/spot-agent.8"
	for f in hooks/* hooks/recover.d/*; do
		case ${f##*/} in test*|README*|'*') continue ;; esac
		[ -f "$f" ] || continue
		echo "/usr/local/share/doc/spot-agent/examples/${f#hooks/}"
	done
	echo "/usr/local/share/doc/spot-agent/examples/README.md"
	echo "/usr/local/share/doc/spot-agent/examples/spot-agent-sandbox.conf"
	echo "/usr/local/share/doc/spot-agent/spot-agent.schema.json"
	for f in README.md spot-agent.rules.yml grafana-dashboard.json prometheus-scrape.yml; do
		echo "/usr/local/share/doc/spot-agent/monitoring/$f"
	done
} | LC_ALL=C sort >"$tmp/expected"
# Every file, and every directory that is empty.
(cd "$dest" && { find . -type f -o -type l; find . -type d -empty | sed 's|$|/|'; }) |
	sed 's|^\.||' | LC_ALL=C sort >"$tmp/actual"
if diff -u "$tmp/expected" "$tmp/actual" >"$tmp/diff"; then
	ok "install: $(wc -l <"$tmp/actual") entries as expected"
else
	cat "$tmp/diff" >&2
	fail "install file list (- expected, + installed)"
fi
[ -x "$dest/usr/local/bin/spot-agent" ] || fail "install: spot-agent is not executable"
for f in hooks/* hooks/recover.d/*; do
	[ -f "$f" ] || continue
	i=$dest/usr/local/share/doc/spot-agent/examples/${f#hooks/}
	[ -e "$i" ] || continue
	if [ -x "$f" ] && [ ! -x "$i" ]; then
		fail "install: example $f lost its executable bit"
	elif [ ! -x "$f" ] && [ -x "$i" ]; then
		fail "install: example $f became executable"
	fi
done
grep -qx 'ExecStart=/usr/local/bin/spot-agent' "$dest/usr/local/lib/systemd/system/spot-agent.service" ||
	fail "install: ExecStart does not point at BINDIR"

step "default config: every key, uncommented, passes spot-agent check"
sed 's/^#\([a-z]\)/\1/' "$dest/etc/spot-agent/spot-agent.conf" >"$tmp/all-keys.conf"
mkdir "$tmp/nohooks"   # check refuses a missing hook directory
# (--warn-only: the empty hook directory is what check would otherwise fail.)
if "$dest/usr/local/bin/spot-agent" check -c "$tmp/all-keys.conf" --hooks-dir "$tmp/nohooks" \
	--hooks-lib-dir none --warn-only >"$tmp/check.out" 2>&1; then
	ok "spot-agent check -c <default config with every key set>"
else
	cat "$tmp/check.out" >&2
	fail "the default config file does not pass spot-agent check"
fi

step "systemd-analyze verify (units as installed, ExecStart under DESTDIR)"
units=$tmp/units
mkdir -p "$units"
sed "s|^ExecStart=/usr/local/bin/spot-agent|ExecStart=$dest/usr/local/bin/spot-agent|" \
	"$dest/usr/local/lib/systemd/system/spot-agent.service" >"$units/spot-agent.service"
cp "$dest/usr/local/lib/systemd/system/spot-agent.socket" "$units/"
if out=$(cd "$units" && systemd-analyze verify --man=no ./spot-agent.service ./spot-agent.socket 2>&1) &&
	[ -z "$out" ]; then
	ok "systemd-analyze verify: spot-agent.service spot-agent.socket clean"
else
	printf '%s\n' "$out" >&2
	fail "systemd-analyze verify"
fi
# The sandbox the unit and man spot-agent-hooks(7) promise, line by line.
missing=
for d in ProtectSystem=full ProtectHome=read-only PrivateTmp=yes PrivateMounts=yes \
	PrivateDevices=yes ProtectClock=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
	ProtectKernelLogs=yes ProtectControlGroups=yes ProtectHostname=yes RestrictNamespaces=yes \
	RestrictSUIDSGID=yes NoNewPrivileges=yes MemoryDenyWriteExecute=yes RestrictRealtime=yes \
	LockPersonality=yes SystemCallArchitectures=native SystemCallFilter=@system-service \
	SystemCallErrorNumber=EPERM 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK'; do
	grep -qx "$d" "$units/spot-agent.service" || missing="$missing '$d'"
done
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$units/spot-agent.service" | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ')
want="CAP_AUDIT_WRITE CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SETGID CAP_SETUID "
[ "$caps" = "$want" ] || missing="$missing CapabilityBoundingSet=(got: $caps)"
if [ -z "$missing" ]; then
	ok "spot-agent.service: every sandbox directive of spot-agent-hooks(7) is set"
else
	fail "spot-agent.service lacks:$missing"
fi
score=$(cd "$units" && systemd-analyze security --offline=yes ./spot-agent.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for spot-agent.service: *//p')
ok "systemd-analyze security --offline=yes: ${score:-unknown}"
# The example drop-in, every line of it enabled, still makes a valid unit.
mkdir -p "$units/spot-agent.service.d"
sed 's/^#\([A-Z]\)/\1/' packaging/systemd/spot-agent-sandbox.conf >"$units/spot-agent.service.d/50-sandbox.conf"
if out=$(cd "$units" && systemd-analyze verify --man=no ./spot-agent.service 2>&1) && [ -z "$out" ]; then
	loose=$(cd "$units" && systemd-analyze security --offline=yes ./spot-agent.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for spot-agent.service: *//p')
	ok "packaging/systemd/spot-agent-sandbox.conf, every line enabled: verify clean, exposure ${loose:-unknown}"
else
	printf '%s\n' "$out" >&2
	fail "systemd-analyze verify with packaging/systemd/spot-agent-sandbox.conf"
fi
rm -rf "$units/spot-agent.service.d"

step "make uninstall DESTDIR"
if $MAKE --no-print-directory uninstall DESTDIR="$dest" >"$tmp/uninstall.log" 2>&1; then
	left=$(cd "$dest" && find . -type f | sed 's|^\.||' | LC_ALL=C sort | tr '\n' ' ')
	if [ "$left" = "/etc/spot-agent/spot-agent.conf " ]; then
		ok "uninstall: only the config file is left"
	else
		fail "uninstall left: $left"
	fi
else
	cat "$tmp/uninstall.log" >&2
	fail "make uninstall"
fi

step "cloud-init schema --config-file cloud-init/spot-agent.yaml"
if out=$(cloud-init schema --config-file cloud-init/spot-agent.yaml 2>&1); then
	ok "$out"
else
	printf '%s\n' "$out" >&2
	fail "cloud-init schema"
fi

step "make deb + lintian"
if $MAKE --no-print-directory deb >"$tmp/deb.log" 2>&1; then
	deb=
	for f in "$BUILD"/spot-agent_"$VERSION"-*.deb; do deb=$f; done
	ok "built $deb"
	dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/deb.list"
	for f in /usr/bin/spot-agent /lib/systemd/system/spot-agent.service \
		/lib/systemd/system/spot-agent.socket /etc/spot-agent/spot-agent.conf \
		/etc/spot-agent.d/README /usr/lib/spot-agent.d/ \
		/usr/share/man/man8/spot-agent.8.gz /usr/share/man/man5/spot-agent.conf.5.gz \
		/usr/share/man/man7/spot-agent-hooks.7.gz /usr/share/doc/spot-agent/copyright \
		/usr/share/doc/spot-agent/examples/ /usr/lib/systemd/logind.conf.d/zz-spot-agent.conf \
		/usr/share/doc/spot-agent/examples/README.md /usr/share/doc/spot-agent/examples/spot-agent-sandbox.conf \
		/usr/share/doc/spot-agent/spot-agent.schema.json /usr/share/doc/spot-agent/monitoring/spot-agent.rules.yml \
		/usr/share/doc/spot-agent/monitoring/grafana-dashboard.json \
		/usr/lib/systemd/catalog/spot-agent.catalog; do
		grep -qx "$f" "$tmp/deb.list" || fail "deb: $f missing"
	done
	# The package's postinst makes logind take the delay, like the rpm's %post.
	dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst 2>/dev/null | grep -q '^spot_agent_logind_delay() {' ||
		fail "deb: postinst does not apply logind's delay"
	dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles >"$tmp/conffiles" 2>/dev/null || true
	grep -qx /etc/spot-agent/spot-agent.conf "$tmp/conffiles" || fail "deb: spot-agent.conf is not a conffile"
	dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst 2>/dev/null | grep -q "deb-systemd-helper.*enable.*'spot-agent.service'" ||
		fail "deb: postinst does not enable spot-agent.service"
	# (lintian notes on stderr that it runs as root; that is no finding.)
	if lintian --fail-on error,warning "$deb" >"$tmp/lintian.out" 2>"$tmp/lintian.err"; then
		ok "lintian: no errors, no warnings$( [ -s "$tmp/lintian.out" ] && printf ' (%s other tags)' "$(wc -l <"$tmp/lintian.out")")"
		[ -s "$tmp/lintian.out" ] && sed 's/^/     /' "$tmp/lintian.out"
	else
		cat "$tmp/lintian.out" "$tmp/lintian.err" >&2
		fail "lintian"
	fi
else
	tail -n 40 "$tmp/deb.log" >&2
	fail "make deb"
fi

step "the logind lines of the deb's postinst and the rpm's %post are the same"
# (The spec indents with spaces, the postinst with tabs.)
snippet() { sed -n '/# --- logind delay: begin ---/,/# --- logind delay: end ---/p' "$1" | sed 's/^[[:space:]]*//'; }
if [ -n "$(snippet packaging/debian/spot-agent.postinst)" ] &&
	[ "$(snippet packaging/debian/spot-agent.postinst)" = "$(snippet packaging/rpm/spot-agent.spec)" ]; then
	ok "logind delay: the same lines in debian/spot-agent.postinst and rpm/spot-agent.spec"
else
	fail "logind delay: debian/spot-agent.postinst and rpm/spot-agent.spec differ (or lack the lines)"
fi

step "make rpm + rpmlint"
if $MAKE --no-print-directory rpm >"$tmp/rpm.log" 2>&1; then
	rpm=
	for f in "$BUILD"/spot-agent-"$VERSION"-*.rpm; do
		case $f in *.src.rpm|*debug*) ;; *) rpm=$f ;; esac
	done
	ok "built $rpm"
	for f in /usr/share/doc/spot-agent/examples/README.md /usr/share/doc/spot-agent/spot-agent.schema.json \
		/usr/share/doc/spot-agent/examples/spot-agent-sandbox.conf \
		/usr/share/doc/spot-agent/monitoring/spot-agent.rules.yml \
		/usr/share/doc/spot-agent/monitoring/grafana-dashboard.json; do
		rpm -qlp "$rpm" 2>/dev/null | grep -qx "$f" || fail "rpm: $f missing"
	done
	rpm -qlp "$rpm" 2>/dev/null | grep -qx /usr/lib/systemd/catalog/spot-agent.catalog ||
		fail "rpm: /usr/lib/systemd/catalog/spot-agent.catalog missing"
	rpm -qp --scripts "$rpm" 2>/dev/null | grep -q 'journalctl --update-catalog' ||
		fail "rpm: its scriptlets do not update the journal catalogue"
	# rpmlint exits non-zero on errors and on too much badness; warnings
	# are shown but do not fail.
	if rpmlint -c packaging/rpm/rpmlint.toml -s "$rpm" packaging/rpm/spot-agent.spec \
		>"$tmp/rpmlint.out" 2>&1 || grep -q ' 0 errors,' "$tmp/rpmlint.out"; then
		ok "rpmlint: $(tail -n 1 "$tmp/rpmlint.out" | sed 's/.*checked; *//; s/; *has taken.*//')"
		grep -E '^[^ ]+: W: ' "$tmp/rpmlint.out" | sed 's/^/     /' || true
	else
		cat "$tmp/rpmlint.out" >&2
		fail "rpmlint reports errors"
	fi
else
	tail -n 40 "$tmp/rpm.log" >&2
	fail "make rpm"
fi

if [ "$failed" != 0 ]; then
	echo "check-packaging: FAILED" >&2
	exit 1
fi
echo "check-packaging: all passed"
