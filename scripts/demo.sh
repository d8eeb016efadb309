#!/usr/bin/env bash
# Runs a securechat server and two scripted clients on loopback with
# throwaway accounts, so a newcomer can see the whole thing work with one
# command. Usage: scripts/demo.sh [tcp|quic]
set -euo pipefail
cd "$(dirname "$0")/.."
transport="${1:-tcp}"
# go.mod needs Go 1.27.3; let an older go command fetch it.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

work=$(mktemp -d)
server_pid=""
bob_pid=""
cleanup() {
	[ -n "$bob_pid" ] && kill "$bob_pid" 2>/dev/null || true
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "demo: building securechat"
go build -o "$work/securechat" .
sc="$work/securechat"

# Throwaway passwords in files only this user can read; never on argv.
umask 077
head -c 18 /dev/urandom | base64 > "$work/alice.pw"
head -c 18 /dev/urandom | base64 > "$work/bob.pw"
"$sc" user add --creds "$work/creds.txt" --password-file "$work/alice.pw" alice
"$sc" user add --creds "$work/creds.txt" --password-file "$work/bob.pw" bob

"$sc" serve --transport "$transport" --listen 127.0.0.1:0 --creds "$work/creds.txt" \
	--state-dir "$work/state" --log-format text >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
	addr=$(sed -n 's/^securechat: serving [a-z]* on //p' "$work/serve.out")
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { echo "demo: the server did not start:"; cat "$work/serve.log"; exit 1; }
cat "$work/serve.out"
fp=$(sed -n 's/^securechat: host key fingerprint //p' "$work/serve.out")

# Bob listens; his input stays open until alice is done.
mkfifo "$work/bob.in"
"$sc" connect --transport "$transport" --user bob --password-file "$work/bob.pw" \
	--known-hosts "$work/known_hosts" --fingerprint "$fp" "$addr" <"$work/bob.in" >"$work/bob.out" 2>&1 &
bob_pid=$!
exec 3>"$work/bob.in"
for _ in $(seq 1 100); do
	grep -q 'bob joined' "$work/bob.out" 2>/dev/null && break
	sleep 0.1
done

printf 'hello bob, this is alice over %s\n/me waves\n/msg bob a direct message\n' "$transport" |
	"$sc" connect --transport "$transport" --user alice --password-file "$work/alice.pw" \
		--known-hosts "$work/known_hosts" --fingerprint "$fp" "$addr"
for _ in $(seq 1 100); do
	grep -q 'a direct message' "$work/bob.out" 2>/dev/null && break
	sleep 0.1
done
exec 3>&-
wait "$bob_pid" || true
bob_pid=""
echo "demo: what bob saw:"
cat "$work/bob.out"
grep -q 'alice: hello bob' "$work/bob.out" || { echo "demo: bob did not get alice's message"; exit 1; }
echo "demo: ok"
