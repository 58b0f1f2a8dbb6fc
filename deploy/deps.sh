#!/bin/sh
# The one list of Debian packages edgegate needs to build, run, test and benchmark.
# `make run`, `make test` and `make bench` call this first; it installs only what is missing,
# runs `apt-get update` at most once, and never prompts. On a machine where we are not root
# it only reports what is missing.
set -eu

PACKAGES="
  build-essential clang pkg-config make git ca-certificates
  libuv1-dev node-llhttp libwslay-dev libmbedtls-dev libpq-dev libhiredis-dev
  liboath-dev libjansson-dev libcrypt-dev libqrencode-dev libpng-dev libcmocka-dev
  libclang-rt-14-dev
  postgresql redis-server
  python3 python3-websockets curl procps iproute2 oathtool zbar-tools valgrind
  golang-go golang-github-hashicorp-yamux-dev golang-github-gorilla-websocket-dev
  wrk nginx-light
  docker-compose python3-yaml nodejs
  chromium chromium-driver python3-selenium
"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing Debian packages:$missing" >&2
	echo "deps.sh: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
