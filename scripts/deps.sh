#!/bin/sh
# Install the Debian packages agentd needs to build, test and run its demo.
# Idempotent and quick when everything is present: it only asks dpkg.
set -eu

PKGS="cmake make gcc pkg-config python3 libseccomp-dev libcap-dev libcurl4-openssl-dev \
libjansson-dev libcmocka-dev libsqlite3-dev libmicrohttpd-dev sqlite3 bubblewrap util-linux iproute2 curl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "agentd: missing packages:$missing" >&2
	echo "agentd: run 'make deps' as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "agentd: installing missing packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists: update once, then install.
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq
	apt-get install -y --no-install-recommends $missing
fi
