#!/usr/bin/env bash
# capture.sh: (re)make the golden packet files in engine/wire/testdata/golden/
# from packets that the Linux kernel itself sends, captured with tcpdump in
# network namespaces made (and deleted again) by goldencap.py.
#
# Usage, as root:
#   internal/tools/goldencap/capture.sh                 # all files
#   internal/tools/goldencap/capture.sh ipv4_tcp_sack   # only the named ones
#   internal/tools/goldencap/capture.sh --keep          # also keep the pcaps
#   internal/tools/goldencap/capture.sh --out /tmp/x    # write elsewhere
# GOLDENCAP_INSTALL=1 installs missing tools with apt-get first (Debian).
#
# Needs a kernel with netns, veth, TUN, IPv6 seg6 lwtunnel, sch_clsact and
# cls_bpf, and the tools: ip tc (iproute2) tcpdump tshark socat ping
# (iputils-ping) ethtool clang python3 (standard library only).
# Namespaces used: gc-* (a left-over one of the same name is deleted first).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "capture.sh: must run as root (network namespaces, TUN, tcpdump)" >&2
	exit 1
fi

declare -A pkg=([ip]=iproute2 [tc]=iproute2 [tcpdump]=tcpdump [tshark]=tshark [socat]=socat
	[ping]=iputils-ping [ethtool]=ethtool [clang]=clang [python3]=python3)
missing=()
for t in ip tc tcpdump tshark socat ping ethtool clang python3; do
	command -v "$t" >/dev/null 2>&1 || missing+=("${pkg[$t]}")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "${GOLDENCAP_INSTALL:-0}" = 1 ] && command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
		apt-get update
		apt-get install -y "${missing[@]}"
	else
		echo "capture.sh: missing packages: ${missing[*]} (set GOLDENCAP_INSTALL=1 to apt-get install them)" >&2
		exit 1
	fi
fi

exec python3 "$here/goldencap.py" "$@"
