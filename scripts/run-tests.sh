#!/bin/bash
# Runs agentd's tests and prints one closing line "tests: N passed, N failed".
#   run-tests.sh            every unit test, then the integration tests
#   run-tests.sh MODULE     the unit tests of one module (agentd includes integration)
#   run-tests.sh unit       unit tests only
# Unit tests are cmocka programs under $BUILD/tests/<module>/; integration tests
# are cmocka programs under $BUILD/tests/integration/ and Python scripts under
# tests/integration/ that print "N passed, N failed" as their last line.
# VALGRIND=1 runs the unit tests under valgrind's leak checker.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
what=${1:-all}
export AGENTD_BIN="$PWD/$BUILD/agentd"
export AGENTD_BUILD="$PWD/$BUILD"
export AGENTD_SRC="$PWD"
export CMOCKA_MESSAGE_OUTPUT=stdout
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Tests never reach beyond loopback; keep proxies out of the way.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*'

passed=0
failed=0
failed_names=()
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

count_output() { # file name status
	local f=$1 name=$2 st=$3 p=0 fl=0 line
	line=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$f" | tail -n 1)
	[ -n "$line" ] && p=$(echo "$line" | grep -oE '[0-9]+' | head -n 1)
	line=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$f" | tail -n 1)
	[ -n "$line" ] && fl=$(echo "$line" | grep -oE '[0-9]+' | head -n 1)
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$f" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | awk '{print $1}')
		fl=$(echo "$line" | awk '{print $3}')
	fi
	if [ "$st" -ne 0 ] && [ "$fl" -eq 0 ]; then fl=1; fi
	passed=$((passed + p))
	failed=$((failed + fl))
	if [ "$fl" -ne 0 ]; then
		failed_names+=("$name")
		echo "FAIL $name (exit $st) — output follows"
		tail -n 60 "$f" | sed 's/^/    /'
	else
		echo "ok   $name ($p)"
	fi
}

run_one() { # name command...
	local name=$1
	shift
	local log="$logdir/$(echo "$name" | tr '/' '_').log"
	local tmp
	tmp=$(mktemp -d /tmp/agentd-test.XXXXXX)
	TEST_TMPDIR=$tmp timeout 900 "$@" >"$log" 2>&1
	local st=$?
	count_output "$log" "$name" "$st"
	rm -rf "$tmp"
}

run_unit_dir() { # module
	local m=$1 t
	for t in "$BUILD"/tests/"$m"/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue ;; esac
		if [ "${VALGRIND:-0}" = 1 ]; then
			run_one "$m/$(basename "$t")" valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
				--error-exitcode=99 "$t"
		else
			run_one "$m/$(basename "$t")" "$t"
		fi
	done
}

run_fuzz_smoke() {
	local t
	for t in "$BUILD"/fuzz/fuzz_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue ;; esac
		run_one "fuzz/$(basename "$t")" "$t"
	done
}

run_integration() {
	local t
	for t in "$BUILD"/tests/integration/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue ;; esac
		run_one "integration/$(basename "$t")" "$t"
	done
	for t in tests/integration/test_*.py; do
		[ -f "$t" ] || continue
		run_one "integration/$(basename "$t")" "$PYTHON" "$t"
	done
}

case "$what" in
all)
	for d in "$BUILD"/tests/*/; do
		m=$(basename "$d")
		[ "$m" = integration ] && continue
		run_unit_dir "$m"
	done
	run_fuzz_smoke
	run_integration
	;;
unit)
	for d in "$BUILD"/tests/*/; do
		m=$(basename "$d")
		[ "$m" = integration ] && continue
		run_unit_dir "$m"
	done
	;;
fuzz)
	run_fuzz_smoke
	;;
agentd | integration)
	run_unit_dir agentd
	run_integration
	;;
*)
	run_unit_dir "$what"
	;;
esac

if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
