#!/usr/bin/env bash
# Every test of the project, in order of cost. `hack/test.sh [unit|lab|integration|molecule|gates]...`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit lab integration molecule gates)
t_all=$(date +%s)
for stage in "${stages[@]}"; do
  t0=$(date +%s)
  echo "=== $stage"
  case "$stage" in
    unit)        pytest -q -p no:cacheprovider tests/unit ;;
    lab)         pytest -q -p no:cacheprovider tests/lab ;;
    integration) pytest -q -p no:cacheprovider tests/integration tests/ecosystem ;;
    molecule)    hack/molecule.sh ;;
    gates)       hack/gates.sh ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
  echo "=== $stage passed in $(( $(date +%s) - t0 ))s"
done
echo "=== all passed in $(( $(date +%s) - t_all ))s"
