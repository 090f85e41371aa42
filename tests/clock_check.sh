#!/usr/bin/env bash
# The test suite under faked system clocks (libfaketime), to find tests that pass or fail by
# the day and hour they run: a test must read the line's time from an injected clock.
#
#   tests/clock_check.sh                          # the three instants below
#   tests/clock_check.sh '2027-12-07 03:00:00'    # given instants (UTC), one run each
#   PYTEST_ARGS='tests/gateway -x' tests/clock_check.sh
#
# Each run fakes the clock by an offset from the real one (faketime -f ±SECONDS), so pytest,
# the gateways it starts, mosquitto and openssl all see the same time. The monotonic clock is
# shifted too: FAKETIME_DONT_FAKE_MONOTONIC=1 makes Python's time.sleep fail with EINVAL.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}

if ! command -v faketime >/dev/null 2>&1; then
  echo "faketime is missing: run 'sudo apt-get install faketime'" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  instants=("$@")
else
  sunday=$(date -u -d 'next sunday' +%F)
  instants=(
    "$sunday 23:50:00"                       # Sunday night in UTC (Monday 07:50 on the reference line)
    "$sunday 16:30:00"                       # Monday 00:30 in Asia/Shanghai: between the line's shifts
    "$(date -u -d '+1 year' +%F) 03:00:00"   # a year ahead, mid-shift (11:00 in Shanghai)
  )
fi

# The install test's pip fetches from the package registry over TLS: its real certificate is
# expired or not yet valid at a faked time far enough off. That is faketime's doing, not
# the test's (the real clock always agrees with the real certificate).
skip=(--deselect tests/integration/test_install.py::test_install_then_upgrade_in_place_keeps_config_and_data)

failed=()
for at in "${instants[@]}"; do
  target=$(date -u -d "$at UTC" +%s) || exit 2
  offset=$(printf '%+d' $((target - $(date -u +%s))))  # "+N" ahead, "-N" back
  echo "== the suite at $at UTC (faketime -f $offset)"
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of arguments
  if ! faketime -f "$offset" "$BIN/pytest" -q -p no:cacheprovider "${skip[@]}" ${PYTEST_ARGS:-}; then
    failed+=("$at")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'failed at (UTC): %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "passed at every instant: ${instants[*]}"
