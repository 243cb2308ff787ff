#!/usr/bin/env bash
# Installs the system and npm packages the test suite uses, if they are missing.
# Needs root (or passwordless sudo) and Debian's apt; without them it says which
# suites will skip and carries on.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm packages, pinned by package-lock.json: @msgpack/msgpack, which the ABI
# is checked against (wasm/abi TestAgainstMsgpackJS, wasm/guest
# TestNodeMsgpack), and for the module in Chromium (wasm/guest TestChromium)
# playwright-core and @bjorn3/browser_wasi_shim.
js=wasm/abi/testdata/js
if [ ! -f "$js/node_modules/@msgpack/msgpack/package.json" ] ||
	[ ! -f "$js/node_modules/playwright-core/package.json" ] ||
	[ ! -f "$js/node_modules/@bjorn3/browser_wasi_shim/package.json" ]; then
	if command -v npm >/dev/null; then
		echo "deps: npm ci in $js"
		npm ci --prefix "$js" --no-audit --no-fund --loglevel=error >/dev/null
	else
		echo "deps: no npm; the checks against @msgpack/msgpack and in Chromium will skip" >&2
	fi
fi

need=()
command -v tshark >/dev/null || need+=(tshark)     # pcap files are checked with tshark
command -v ip >/dev/null || need+=(iproute2)        # TUN and namespace tests inspect with ip -j
command -v ethtool >/dev/null || need+=(ethtool)    # the TUN offload tests check offload state
command -v tcpdump >/dev/null || need+=(tcpdump)    # captures on demand (-tun.pcap)
command -v nft >/dev/null || need+=(nftables)       # serve's 5% loss test (nftables numgen random)
command -v socat >/dev/null || need+=(socat)        # serve's echo test
command -v curl >/dev/null || need+=(curl)          # serve's HTTP test, forward's tests
command -v iperf3 >/dev/null || need+=(iperf3)      # forward's tests, make bench-tun
command -v pasta >/dev/null || need+=(passt)        # make bench-tun (forward's peer)
command -v slirp4netns >/dev/null || need+=(slirp4netns) # make bench-tun (forward's peer)
command -v chromium >/dev/null || need+=(chromium)  # the module in a browser (wasm/guest TestChromium)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
		echo "deps: not root; missing ${need[*]}: the tests that need them will skip" >&2
		exit 0
	fi
fi
if ! command -v apt-get >/dev/null; then
	echo "deps: no apt-get; missing ${need[*]}: the tests that need them will skip" >&2
	exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
