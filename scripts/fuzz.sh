#!/usr/bin/env bash
# Runs every fuzz target in the module for a short time each (default 3s).
# Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
t=${1:-3s}
go=${GO:-go}
fail=0
for pkg in $($go list ./...); do
	targets=$($go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for f in $targets; do
		echo "fuzz: $pkg $f ($t)"
		if ! $go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
			cat /tmp/fuzz.$$.log
			fail=1
		fi
	done
done
rm -f /tmp/fuzz.$$.log
exit $fail
