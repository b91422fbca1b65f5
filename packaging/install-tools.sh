#!/bin/sh
# Installs the Debian packages that packaging and its checks need, when they
# are missing. usage: packaging/install-tools.sh deb|rpm|packaging|system
set -eu

case "${1:-packaging}" in
deb)       want="dpkg-dev debhelper fakeroot lintian" ;;
rpm)       want="rpm rpmlint" ;;
packaging) want="dpkg-dev debhelper fakeroot lintian rpm rpmlint mandoc systemd cloud-init" ;;
system)    want="debootstrap systemd-container dpkg-dev" ;;
*)         echo "install-tools: unknown set '$1' (deb, rpm, packaging, system)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-tools: not a Debian system; install by hand the equivalents of: $want" >&2
	exit 1
fi

missing=
for p in $want; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-tools: missing Debian packages:$missing" >&2
	echo "install-tools: run as root, or first: sudo apt-get install --no-install-recommends$missing" >&2
	exit 1
fi
echo "install-tools: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null; then
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null || {
		echo "install-tools: apt-get could not install:$missing" >&2
		exit 1
	}
fi
