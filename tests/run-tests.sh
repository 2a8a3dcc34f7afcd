#!/usr/bin/env bash
# Builds the solution and runs every test project, then prints one summary line:
#   tests: N passed, N failed, N skipped
# The exit status is non-zero when anything failed or no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
log=artifacts/test.log

# Servers and tools the tests start (redis-server ...), installed when missing.
bash tests/prerequisites.sh || { echo "tests: 0 passed, 1 failed" | tee artifacts/test-summary.txt; exit 1; }

dotnet build EffServe.sln -c Release -v quiet -nologo 2>&1 | tee artifacts/build.log
build_status=${PIPESTATUS[0]}
if [ "$build_status" -ne 0 ]; then
  echo "The build failed; see above."
  echo "tests: 0 passed, 1 failed" | tee artifacts/test-summary.txt
  exit 1
fi

# Test projects run one after another so that servers started by different projects do not
# fight over the two cores; each project runs its own classes in parallel.
timeout 1800 dotnet test --solution EffServe.sln -c Release --no-build --max-parallel-test-modules 1 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}

sum() { grep -E "^\s+$1: [0-9]+" "$log" | awk '{s += $2} END {print s + 0}'; }
passed=$(sum succeeded)
failed=$(sum failed)
skipped=$(sum skipped)
if [ "$test_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the runner failed without reporting a failed test (a crash or a time-out)
fi

echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped" | tee artifacts/test-summary.txt
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
