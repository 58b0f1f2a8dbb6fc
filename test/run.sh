#!/bin/sh
# `make test`: throwaway PostgreSQL + Redis, then every unit test (cmocka), every integration
# test (Python driving the real daemons over sockets) and, where clang is present, a short run
# of every fuzz target. The servers are stopped however the run ends. The last line is
# "N passed, N failed"; the exit status is non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/cc-san0}
SAN=${SAN:-0}
PY=/usr/bin/python3
FUZZ_SECONDS=${FUZZ_SECONDS:-15}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/edgegate-test.XXXXXX)
chmod 755 "$work"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
redis_port=$(free_port)

cleanup() {
	sh deploy/dev-services.sh stop "$work/svc" "$pg_port" "$redis_port" >/dev/null 2>&1
	if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting PostgreSQL (:$pg_port) and Redis (:$redis_port) in $work"
sh deploy/dev-services.sh start "$work/svc" "$pg_port" "$redis_port" || { echo "0 passed, 1 failed"; exit 1; }

export EDGEGATE_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/edgegate"
export EDGEGATE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export EDGEGATE_TEST_SERVICES_DIR="$work/svc"
export EDGEGATE_TEST_PG_PORT="$pg_port"
export EDGEGATE_TEST_REDIS_PORT="$redis_port"
export EDGEGATE_TEST_WORK="$work"
export EDGEGATE_TEST_BUILD="$BUILD"
export EDGEGATE_TEST_SAN="$SAN"
# ASan: report leaks, fail hard; UBSan: every finding is fatal (also set at compile time).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

passed=0
failed=0
failures=""

echo "== unit tests"
for t in "$BUILD"/unit/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	out="$work/$name.out"
	CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$out" 2>&1
	rc=$?
	cat "$out"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
	p=${p:-0}; f=${f:-0}
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi # crashed or sanitizer exit
	passed=$((passed + p)); failed=$((failed + f))
	[ "$f" = 0 ] || failures="$failures $name"
done

echo "== integration tests"
$PY test/integration/run.py "$@" | tee "$work/integration.out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/integration.out" | tail -n 1)
if [ -n "$line" ]; then
	p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
	passed=$((passed + p)); failed=$((failed + f))
	[ "$f" = 0 ] || failures="$failures integration"
else
	failed=$((failed + 1)); failures="$failures integration(no-summary)"
fi

if command -v clang >/dev/null 2>&1 && [ "$FUZZ_SECONDS" != 0 ]; then
	echo "== fuzz targets ($FUZZ_SECONDS s each)"
	if make --no-print-directory fuzz FUZZ_SECONDS=0 >"$work/fuzz-build.out" 2>&1; then
		for f in build/fuzz/fuzz_*; do
			[ -x "$f" ] || continue
			name=$(basename "$f")
			mkdir -p "$work/corpus-$name"
			if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 "$work/corpus-$name" \
				>"$work/$name.out" 2>&1; then
				echo "ok   $name ($(grep -c . "$work/$name.out") lines of fuzzer log)"
				passed=$((passed + 1))
			else
				tail -n 30 "$work/$name.out"
				echo "FAIL $name"
				failed=$((failed + 1)); failures="$failures $name"
			fi
		done
	else
		cat "$work/fuzz-build.out"
		failed=$((failed + 1)); failures="$failures fuzz-build"
	fi
fi

[ -z "$failures" ] || echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
