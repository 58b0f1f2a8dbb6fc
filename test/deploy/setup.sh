#!/bin/sh
# Makes test/deploy/node_modules match package-lock.json (the Kubernetes API schemas, ajv and
# js-yaml that validate-k8s.cjs uses). test_deploy.py runs it before each validation: when the
# modules are already there for this lock file it touches nothing and needs no network; otherwise
# it runs `npm ci`.
set -eu
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
	# deploy/deps.sh installs nodejs but cannot list Debian's npm package: NodeSource's nodejs,
	# which some of our machines carry, bundles npm and Conflicts: npm, so naming it there would
	# break those machines. Debian's own nodejs comes without npm; this fills that gap.
	if [ "$(id -u)" != 0 ]; then
		echo "test/deploy/setup.sh: npm is missing (as root: apt-get install npm)" >&2
		exit 1
	fi
	echo "test/deploy/setup.sh: installing Debian's npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends npm >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends npm >/dev/null; }
fi

# Several `make test` runs may share this work tree: one installs, the others wait for it.
exec 9>.setup.lock
flock 9
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$want" ]; then
	echo "test/deploy/setup.sh: npm ci (package-lock.json changed or node_modules missing)" >&2
	npm ci --no-audit --no-fund --loglevel=error >&2
	echo "$want" >node_modules/.lock-sha256
fi
