#!/usr/bin/env bash
# Every molecule scenario (extensions/molecule/*), each against a lab it starts and stops itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(onboard offboard failing_cr bootstrap multicluster discover_prune health)
for s in "${scenarios[@]}"; do
  t0=$(date +%s)
  molecule test -s "$s"
  echo "--- molecule $s passed in $(( $(date +%s) - t0 ))s"
done
