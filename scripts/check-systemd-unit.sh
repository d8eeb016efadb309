#!/usr/bin/env bash
# Checks contrib/systemd/securechat.service with systemd's own tools:
#   systemd-analyze verify: directives, the ExecStart binary and the man
#     page named by Documentation= exist; any output is a failure;
#   systemd-sysusers: securechat.sysusers makes the unit's User=;
#   systemd-analyze security --offline: the exposure level is at most
#     max_exposure (2.0 of 10; lower is better).
# Usage: scripts/check-systemd-unit.sh (needs systemd 252 or later).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
unit=contrib/systemd/securechat.service
max_exposure=2.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# verify checks that ExecStart's binary exists, so it runs on a copy that
# names one just built; and that "man securechat(1)" finds a page, so the
# generated one is put on a MANPATH.
go build -o "$work/securechat" .
mkdir -p "$work/man/man1"
cp doc/securechat.1 "$work/man/man1/"
sed "s#/usr/local/bin/securechat#$work/securechat#g" "$unit" >"$work/securechat.service"
if ! MANPATH="$work/man" systemd-analyze verify "$work/securechat.service" >"$work/verify.log" 2>&1 ||
	[ -s "$work/verify.log" ]; then
	echo "systemd-analyze verify $unit:"; cat "$work/verify.log"; exit 1
fi
echo "systemd-analyze verify $unit: clean"

# The unit's User= comes from securechat.sysusers: create it in an empty
# root to see that the file is valid and makes that user.
mkdir -p "$work/root/etc"
systemd-sysusers --root="$work/root" - <contrib/systemd/securechat.sysusers >/dev/null
user=$(sed -n 's/^User=//p' "$unit")
if ! grep -q "^$user:.*:/var/lib/securechat:" "$work/root/etc/passwd"; then
	echo "contrib/systemd/securechat.sysusers does not make the unit's user $user"; exit 1
fi
echo "systemd-sysusers contrib/systemd/securechat.sysusers: makes $user"

# --threshold counts in tenths (exposure 2.0 is 20); the overall line is
# printed too, so the number is in the log.
threshold=$(awk -v e="$max_exposure" 'BEGIN { printf "%d", e * 10 }')
status=0
systemd-analyze security --offline=true --threshold="$threshold" "$unit" >"$work/security.log" 2>&1 || status=$?
overall=$(grep 'Overall exposure level' "$work/security.log" || true)
if [ "$status" -ne 0 ] || [ -z "$overall" ]; then
	cat "$work/security.log"
	echo "systemd-analyze security $unit: exposure above $max_exposure (exit $status)"; exit 1
fi
echo "systemd-analyze security $unit: ${overall#→ } (at most $max_exposure allowed)"
