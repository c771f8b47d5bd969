#!/usr/bin/env bash
# Every molecule scenario (extensions/molecule/*), each against a lab of its own that it starts and
# stops itself (in its ephemeral directory), MOLECULE_JOBS at a time (default 2). Each scenario's
# output goes to build/molecule/<scenario>.log; a failed scenario's log is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(onboard offboard failing_cr bootstrap multicluster discover_prune health)
jobs=${MOLECULE_JOBS:-2}
logs=build/molecule
mkdir -p "$logs"
run() {
  local s=$1 t0 rc=0
  t0=$(date +%s)
  molecule test -s "$s" >"$logs/$s.log" 2>&1 || rc=$?
  echo "$rc" >"$logs/$s.rc"
  if [ "$rc" = 0 ]; then
    echo "--- molecule $s passed in $(( $(date +%s) - t0 ))s"
  else
    echo "--- molecule $s FAILED (rc $rc) after $(( $(date +%s) - t0 ))s; its log ($logs/$s.log) ends:"
    tail -n 150 "$logs/$s.log"
  fi
  return "$rc"
}
rm -f "$logs"/*.rc
for s in "${scenarios[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "--- molecule $s started"
  run "$s" &
done
wait || true
failed=()
for s in "${scenarios[@]}"; do
  [ "$(cat "$logs/$s.rc" 2>/dev/null)" = 0 ] || failed+=("$s")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: failed scenarios: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: ${#scenarios[@]} scenarios passed"
