#!/bin/sh
# `make run`: a local edgegate for trying it out. PostgreSQL and Redis live under ./.run (kept
# between runs, with generated secrets in ./.run/env); migrations are applied; both daemons run
# in the foreground with their logs on this terminal. Ctrl-C stops everything.
# Unless EDGEGATE_OIDC_ISSUER is already set (a real provider), a local OpenID provider (the
# oidc-provider npm package, test/oidc/provider.js) runs too, with a demo user, so that sign-in
# can be tried from a browser.
set -eu
cd "$(dirname "$0")/.."
RUN=${EDGEGATE_RUN_DIR:-$PWD/.run}
PG_PORT=${EDGEGATE_RUN_PG_PORT:-55432}
REDIS_PORT=${EDGEGATE_RUN_REDIS_PORT:-56379}
API_PORT=${EDGEGATE_RUN_API_PORT:-3721}
DEMO_PORT=${EDGEGATE_RUN_DEMO_PORT:-8081}
OIDC_PORT=${EDGEGATE_RUN_OIDC_PORT:-3722}
OIDC_LOCAL=0
[ -n "${EDGEGATE_OIDC_ISSUER:-}" ] || OIDC_LOCAL=1
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
if [ ! -f "$RUN/demo-token" ]; then
	(umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$RUN/demo-token")
fi
set -a
. "$RUN/env"
EDGEGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/edgegate
EDGEGATE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
EDGEGATE_API_LISTEN=127.0.0.1:$API_PORT
EDGEGATE_PUBLIC_ORIGIN=http://127.0.0.1:$API_PORT
EDGEGATE_TUNNEL_LISTEN=127.0.0.1:3800
EDGEGATE_INTERNAL_LISTEN=127.0.0.1:3801
EDGEGATE_INTERNAL_URL=http://127.0.0.1:3801
EDGEGATE_DEV=1
if [ "$OIDC_LOCAL" = 1 ]; then
	# "localhost", not 127.0.0.1: browsers keep cookies per host name, so the provider's and
	# ours stay apart.
	EDGEGATE_OIDC_ISSUER=http://localhost:$OIDC_PORT
	EDGEGATE_OIDC_CLIENT_ID=edgegate-dev
	EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI=http://127.0.0.1:$API_PORT/
fi
set +a

pids=""
helpers="" # not our daemons: programs that a non-interactive shell started with SIGINT ignored
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
	for p in $helpers; do kill -TERM "$p" 2>/dev/null || true; done
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

if [ "$OIDC_LOCAL" = 1 ]; then
	echo "== OpenID provider $EDGEGATE_OIDC_ISSUER (oidc-provider under node)"
	if sh test/oidc/setup.sh; then
		cat >"$RUN/oidc-provider.json" <<JSON
{"issuer": "$EDGEGATE_OIDC_ISSUER",
 "clients": [{"client_id": "edgegate-dev", "token_endpoint_auth_method": "none",
              "redirect_uris": ["http://127.0.0.1:$API_PORT/api/auth/callback"],
              "post_logout_redirect_uris": ["$EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI"],
              "grant_types": ["authorization_code"], "response_types": ["code"]}],
 "users": [{"login": "demo", "password": "demo", "name": "Demo User", "email": "demo@example.org"}]}
JSON
		node test/oidc/provider.js "$RUN/oidc-provider.json" >"$RUN/oidc-provider.log" 2>&1 &
		pids="$pids $!" helpers="$helpers $!"
		i=0
		until curl -fsS "$EDGEGATE_OIDC_ISSUER/.well-known/openid-configuration" >/dev/null 2>&1; do
			i=$((i + 1)); [ $i -lt 100 ] || { echo "the OpenID provider did not start: $RUN/oidc-provider.log"; exit 1; }
			sleep 0.1
		done
	else
		echo "   (not started: npm could not install it; sign-in answers 502 until it runs)"
	fi
fi

bin/remote-proxy & pids="$pids $!"
bin/api-server & pids="$pids $!"

# The demo device: a small web server standing in for a camera UI, and the reference agent
# holding a demo credential. The credential is registered the way api-server registers paired
# devices (tunnel:cred:<sha256 of the token>).
demo_hash=$(tr -d '\n' <"$RUN/demo-token" | sha256sum | cut -d' ' -f1)
redis-cli -p "$REDIS_PORT" HSET "tunnel:cred:$demo_hash" device_id demo-device user_id demo-user >/dev/null
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory deploy/demo "$DEMO_PORT" \
	>"$RUN/demo-target.log" 2>&1 & pids="$pids $!" helpers="$helpers $!"
bin/edge-agent --url ws://127.0.0.1:3800/tunnel --token-file "$RUN/demo-token" \
	--target "127.0.0.1:$DEMO_PORT" --agent-version demo & pids="$pids $!"

i=0
until curl -fsS "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 &&
	curl -fsS http://127.0.0.1:3801/healthz >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "the daemons did not start; see the log above"; exit 1; }
	sleep 0.1
done

signin_note=" at $EDGEGATE_OIDC_ISSUER"
[ "$OIDC_LOCAL" = 0 ] || signin_note=" (the local OpenID provider's demo user: login demo, password demo)"
cat <<MSG

== edgegate is running (Ctrl-C stops it)
  api-server    http://127.0.0.1:$API_PORT
  remote-proxy  tunnel ws://127.0.0.1:3800/tunnel, internal http://127.0.0.1:3801
  secrets       $RUN/env

Try:
  curl -s http://127.0.0.1:$API_PORT/healthz
  curl -s http://127.0.0.1:$API_PORT/readyz
  curl -s -H "Authorization: Bearer \$(grep INTERNAL_TOKEN $RUN/env | cut -d= -f2-)" http://127.0.0.1:$API_PORT/metrics | head
  curl -s http://127.0.0.1:3801/readyz

Sign in from a browser$signin_note:
  http://127.0.0.1:$API_PORT/api/auth/login?return_to=/api/auth/me

The demo device (its agent connects within a second):
  T=\$(grep INTERNAL_TOKEN $RUN/env | cut -d= -f2-)
  curl -s -H "Authorization: Bearer \$T" http://127.0.0.1:3801/internal/sessions
  curl -s -H "Authorization: Bearer \$T" http://127.0.0.1:3801/internal/forward/http \\
       -d '{"device_id":"demo-device","method":"GET","path":"/hello"}'

MSG
wait
