#!/bin/sh
# Local PostgreSQL and Redis for `make run` (under ./.run, kept) and `make test` (a temp dir).
#
#   dev-services.sh start   DIR PG_PORT REDIS_PORT   initdb if needed, start both, create the db
#   dev-services.sh stop    DIR                       stop both (no error when not running)
#   dev-services.sh stop-pg|start-pg DIR PG_PORT,  stop-redis|start-redis DIR REDIS_PORT
#   dev-services.sh env     DIR PG_PORT REDIS_PORT   print EDGEGATE_DATABASE_URL / _REDIS_URL lines
#
# PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (runuser); the
# data directory is owned by that user. Both listen on 127.0.0.1 only; Redis keeps nothing on
# disk. Authentication is `trust` on loopback: these servers are throwaway and local.
set -eu

cmd=${1:?usage: dev-services.sh start|stop|env DIR [PG_PORT REDIS_PORT]}
dir=${2:?missing DIR}
pg_port=${3:-55432}
redis_port=${4:-56379}
case "$cmd" in start-redis | stop-redis) redis_port=${3:-56379} ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] || { echo "dev-services: PostgreSQL server binaries not found (deploy/deps.sh)" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
	if [ "$(id -u)" = 0 ]; then
		chmod 755 "$dir"
		runuser -u postgres -- test -x "$dir" || {
			echo "dev-services: user postgres cannot reach $dir (a parent directory is private)" >&2; exit 1; }
	fi
	if [ ! -f "$dir/pg/PG_VERSION" ]; then
		mkdir -p "$dir/pg"
		[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
		chmod 700 "$dir/pg"
		as_pg "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/pg-initdb.log" 2>&1 \
			|| { cat "$dir/pg-initdb.log" >&2; exit 1; }
	fi
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
	as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w -t 60 \
		-o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
		|| { tail -n 20 "$dir/pg/server.log" >&2; exit 1; }
	echo "$pg_port" >"$dir/pg.port"
	as_pg psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qtAc \
		"SELECT 1 FROM pg_database WHERE datname='edgegate'" | grep -q 1 \
		|| as_pg psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "CREATE DATABASE edgegate" >/dev/null
}

stop_pg() {
	[ -f "$dir/pg/postmaster.pid" ] || return 0
	as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

start_redis() {
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
	echo "$redis_port" >"$dir/redis.port"
	i=0
	until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "dev-services: redis did not start" >&2; exit 1; }
		sleep 0.1
	done
}

stop_redis() {
	[ -f "$dir/redis.pid" ] || return 0
	pid=$(cat "$dir/redis.pid")
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	rm -f "$dir/redis.pid"
}

case "$cmd" in
	start) start_pg; start_redis ;;
	stop) stop_redis; stop_pg ;;
	start-pg) start_pg ;;
	stop-pg) stop_pg ;;
	start-redis) start_redis ;;
	stop-redis) stop_redis ;;
	env)
		echo "EDGEGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/edgegate"
		echo "EDGEGATE_REDIS_URL=redis://127.0.0.1:$redis_port/0"
		;;
	*) echo "dev-services: unknown command $cmd" >&2; exit 2 ;;
esac
