#!/bin/sh
# `make run`: a local edgegate for trying it out. PostgreSQL and Redis live under ./.run (kept
# between runs, with generated secrets in ./.run/env); migrations are applied; both daemons run
# in the foreground with their logs on this terminal. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
RUN=${EDGEGATE_RUN_DIR:-$PWD/.run}
PG_PORT=${EDGEGATE_RUN_PG_PORT:-55432}
REDIS_PORT=${EDGEGATE_RUN_REDIS_PORT:-56379}
API_PORT=${EDGEGATE_RUN_API_PORT:-3721}
DEMO_PORT=${EDGEGATE_RUN_DEMO_PORT:-8081}
TUNNEL_PORT=${EDGEGATE_RUN_TUNNEL_PORT:-3800}
INTERNAL_PORT=${EDGEGATE_RUN_INTERNAL_PORT:-3801}
mkdir -p "$RUN"

if [ ! -f "$RUN/env" ]; then
	# Secrets made once per checkout, never committed (.run is ignored by git).
	rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
	umask 077
	cat >"$RUN/env" <<ENV
EDGEGATE_INTERNAL_TOKEN=$(rand 36 | tr '+/' '-_')
EDGEGATE_SESSION_SECRET=$(rand 48)
EDGEGATE_MFA_KEY=$(rand 32)
ENV
	umask 022
fi
if [ ! -f "$RUN/demo-password" ]; then
	(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$RUN/demo-password")
fi
set -a
. "$RUN/env"
EDGEGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/edgegate
EDGEGATE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
EDGEGATE_API_LISTEN=127.0.0.1:$API_PORT
EDGEGATE_PUBLIC_ORIGIN=http://127.0.0.1:$API_PORT
EDGEGATE_TUNNEL_LISTEN=127.0.0.1:$TUNNEL_PORT
EDGEGATE_INTERNAL_LISTEN=127.0.0.1:$INTERNAL_PORT
EDGEGATE_INTERNAL_URL=http://127.0.0.1:$INTERNAL_PORT
EDGEGATE_DEV=1
set +a

pids=""
signal=""
stop_all() {
	trap - INT TERM EXIT
	echo
	echo "== stopping"
	# Ctrl-C has already interrupted every process of the terminal's group; a second signal
	# would tell the daemons to skip their graceful shutdown.
	if [ "$signal" != INT ]; then
		for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	fi
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	sh deploy/dev-services.sh stop "$RUN/svc" "$PG_PORT" "$REDIS_PORT" >/dev/null 2>&1 || true
	echo "== stopped (data kept in $RUN)"
}
trap stop_all EXIT
trap 'signal=INT; exit 0' INT
trap 'signal=TERM; exit 0' TERM

echo "== PostgreSQL :$PG_PORT and Redis :$REDIS_PORT (data in $RUN/svc)"
sh deploy/dev-services.sh start "$RUN/svc" "$PG_PORT" "$REDIS_PORT"
echo "== migrations"
bin/api-server migrate --dir sql

bin/remote-proxy & pids="$pids $!"
bin/api-server & pids="$pids $!"

i=0
until curl -fsS "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 &&
	curl -fsS "http://127.0.0.1:$INTERNAL_PORT/healthz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "the daemons did not start; see the log above"; exit 1; }
	sleep 0.1
done

# The demo operator (an admin named "demo"; its password is kept in $RUN/demo-password) and
# the demo device, paired through the real flow the first time (or again when the database
# no longer knows it): a pairing code from the signed-in operator, exchanged by the device for
# its credential. A small web server stands in for the device's camera UI.
json_field() { /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
bin/api-server create-admin --login demo --name "Demo operator" <"$RUN/demo-password" >/dev/null
session=$(curl -fsS -H 'Content-Type: application/json' \
	-d "{\"user_id\":\"demo\",\"password\":\"$(cat "$RUN/demo-password")\"}" \
	"http://127.0.0.1:$API_PORT/api/agents/login" | json_field token)
demo_id=$(cat "$RUN/demo-device" 2>/dev/null || true)
if [ -z "$demo_id" ] || ! curl -fsS -o /dev/null -H "Authorization: Bearer $session" \
	"http://127.0.0.1:$API_PORT/api/devices/$demo_id"; then
	echo "== pairing the demo device"
	code=$(curl -fsS -X POST -H "Authorization: Bearer $session" \
		"http://127.0.0.1:$API_PORT/api/devices/pairing" | json_field code)
	answer=$(curl -fsS -H 'Content-Type: application/json' \
		-d "{\"code\":\"$code\",\"device_name\":\"demo camera\"}" \
		"http://127.0.0.1:$API_PORT/api/pairing/exchange")
	(umask 077 && echo "$answer" | json_field token >"$RUN/demo-token")
	demo_id=$(echo "$answer" | json_field device_id)
	echo "$demo_id" >"$RUN/demo-device"
fi
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory deploy/demo "$DEMO_PORT" \
	>"$RUN/demo-target.log" 2>&1 & pids="$pids $!"
bin/edge-agent --url "ws://127.0.0.1:$TUNNEL_PORT/tunnel" --token-file "$RUN/demo-token" \
	--target "127.0.0.1:$DEMO_PORT" --agent-version demo & pids="$pids $!"

cat <<MSG

== edgegate is running (Ctrl-C stops it)
  api-server    http://127.0.0.1:$API_PORT
  remote-proxy  tunnel ws://127.0.0.1:$TUNNEL_PORT/tunnel, internal http://127.0.0.1:$INTERNAL_PORT
  secrets       $RUN/env
  demo operator demo / $(cat "$RUN/demo-password")   (an admin; password also in $RUN/demo-password)
  demo device   $demo_id

Try (the demo device's agent connects within a second):
  S=\$(curl -s -H 'Content-Type: application/json' -d '{"user_id":"demo","password":"$(cat "$RUN/demo-password")"}' http://127.0.0.1:$API_PORT/api/agents/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s -H "Authorization: Bearer \$S" http://127.0.0.1:$API_PORT/api/devices
  curl -s -H "Authorization: Bearer \$S" http://127.0.0.1:$API_PORT/api/devices/$demo_id/proxy/hello
  curl -s -H "Authorization: Bearer \$S" http://127.0.0.1:$API_PORT/api/devices/$demo_id/proxy/

Operations:
  curl -s http://127.0.0.1:$API_PORT/readyz
  curl -s -H "Authorization: Bearer \$(grep INTERNAL_TOKEN $RUN/env | cut -d= -f2-)" http://127.0.0.1:$API_PORT/metrics | head
  curl -s -H "Authorization: Bearer \$(grep INTERNAL_TOKEN $RUN/env | cut -d= -f2-)" http://127.0.0.1:$INTERNAL_PORT/internal/sessions

MSG
wait
