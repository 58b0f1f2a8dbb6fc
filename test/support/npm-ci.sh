#!/bin/sh
# npm-ci.sh DIR: makes DIR/node_modules match DIR/package-lock.json, for the node programs the
# tests run (test/deploy: the Kubernetes schema check; test/oidc: the OpenID provider). When the
# modules are already there for this lock file it touches nothing and needs no network;
# otherwise it runs `npm ci`.
set -eu
cd "$1"

if ! command -v npm >/dev/null 2>&1; then
	# deploy/deps.sh installs nodejs but cannot list Debian's npm package: NodeSource's nodejs,
	# which some of our machines carry, bundles npm and Conflicts: npm, so naming it there would
	# break those machines. Debian's own nodejs comes without npm; this fills that gap.
	if [ "$(id -u)" != 0 ]; then
		echo "npm-ci.sh: npm is missing (as root: apt-get install npm)" >&2
		exit 1
	fi
	echo "npm-ci.sh: installing Debian's npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends npm >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends npm >/dev/null; }
fi

# Several `make test` runs may share this work tree: one installs, the others wait for it.
exec 9>.setup.lock
flock 9
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$want" ]; then
	echo "npm-ci.sh: npm ci in $1 (package-lock.json changed or node_modules missing)" >&2
	npm ci --no-audit --no-fund --loglevel=error >&2
	echo "$want" >node_modules/.lock-sha256
fi
