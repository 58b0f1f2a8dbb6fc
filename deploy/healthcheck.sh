#!/bin/bash
# Container health probe of the edgegate image (installed as /usr/local/bin/edgegate-healthcheck).
#
#   edgegate-healthcheck [api-server|remote-proxy] [PATH]     exit 0 when GET PATH answers 200
#
# PATH defaults to /readyz: a container is "healthy" when it can serve (its PostgreSQL/Redis are
# reachable), which is what compose's `depends_on: condition: service_healthy` waits for.
# The daemon's port comes from the same variables the daemon reads (EDGEGATE_API_LISTEN,
# EDGEGATE_INTERNAL_LISTEN); with no daemon named, the api-server port is tried first, then the
# remote-proxy internal port.
#
# Why bash's /dev/tcp and not curl: the runtime image carries only the daemons' libraries, and
# bash plus coreutils are already in the base image; curl would add libcurl and a dozen
# libraries (TLS, LDAP, SSH, ...) to every container for one local GET.
set -u

daemon=${1:-}
path=${2:-/readyz}

# probe LISTEN_ADDRESS: 0 on "200", 1 when the answer is anything else, 2 when nothing listens.
probe() {
	port=${1##*:}
	host=${1%:*}
	host=${host#[}
	host=${host%]}
	case $host in
	'' | 0.0.0.0) host=127.0.0.1 ;; # a wildcard listener is reached on loopback
	::) host=::1 ;;
	esac
	# (In braces: `exec 3<>... 2>/dev/null` alone would silence this shell's stderr for good.)
	{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 2
	printf 'GET %s HTTP/1.1\r\nHost: healthcheck\r\nConnection: close\r\n\r\n' "$path" >&3
	# A daemon whose loop is stuck still completes the TCP handshake (kernel backlog): bound the wait.
	IFS= read -r -t 3 status <&3 || status="(no answer within 3 s)"
	exec 3<&-
	status=${status%$'\r'}
	case $status in
	'HTTP/1.1 200 '* | 'HTTP/1.0 200 '*) return 0 ;;
	esac
	echo "edgegate-healthcheck: $host:$port$path: $status" >&2
	return 1
}

api=${EDGEGATE_API_LISTEN:-0.0.0.0:3721}
internal=${EDGEGATE_INTERNAL_LISTEN:-0.0.0.0:3801}
case $daemon in
api-server) probe "$api" ;;
remote-proxy) probe "$internal" ;;
'')
	probe "$api"
	rc=$?
	[ $rc = 2 ] || exit $rc
	probe "$internal"
	;;
*)
	echo "usage: edgegate-healthcheck [api-server|remote-proxy] [PATH]" >&2
	exit 2
	;;
esac
rc=$?
[ $rc = 2 ] && echo "edgegate-healthcheck: nothing listens for $path (${daemon:-api-server nor remote-proxy})" >&2
[ $rc = 0 ]
