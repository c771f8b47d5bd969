#!/usr/bin/env bash
# Every test of the project, in order of cost. `hack/test.sh [unit|compat|lab|qe|integration|molecule|gates]...`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit compat lab qe integration molecule gates)
# Test files run on MAAS_TEST_JOBS workers (pytest-xdist; default 2, 1 = in this process): most of a
# test's time is spent waiting for the lab, a playbook or a fault, not on a CPU. A file stays on one
# worker (its module fixtures, e.g. its own lab, are built once); each worker has its own session lab.
jobs=${MAAS_TEST_JOBS:-2}
xdist=()
[ "$jobs" -le 1 ] || xdist=(-n "$jobs" --dist loadfile)
# Everything the tests and the tools they run write to the temporary directory (pytest's directories,
# the kubernetes client's discovery cache k8srcp-*.json and CA files, molecule's and ansible's files)
# goes to one directory, removed when every stage passed (kept, and named, for debugging otherwise).
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/maas-test.XXXXXX")
export TMPDIR
cleanup() {
  local rc=$?
  if [ "$rc" = 0 ]; then rm -rf "$TMPDIR"; else echo "temporary files kept in $TMPDIR" >&2; fi
}
trap cleanup EXIT
# pytest's temporary directories (labs, reports, credentials files) are removed after each run, kept
# only for a failed test (to debug it).
keep=(-o tmp_path_retention_policy=failed)
t_all=$(date +%s)
for stage in "${stages[@]}"; do
  t0=$(date +%s)
  echo "=== $stage"
  case "$stage" in
    unit)        pytest -q -p no:cacheprovider "${keep[@]}" tests/unit ;;
    compat)      hack/compat.sh ;;  # the oldest ansible-core and kubernetes.core claimed: unit tests + an onboarding
    lab)         pytest -q -p no:cacheprovider "${keep[@]}" "${xdist[@]}" --durations=10 tests/lab ;;
    qe)          hack/qe_suite.sh ;;  # the 3scale QE client's own integration suite against the lab
    integration) pytest -q -p no:cacheprovider "${keep[@]}" "${xdist[@]}" --durations=15 tests/integration tests/ecosystem ;;
    molecule)    hack/molecule.sh ;;
    gates)       hack/gates.sh ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
  echo "=== $stage passed in $(( $(date +%s) - t0 ))s"
done
echo "=== all passed in $(( $(date +%s) - t_all ))s"
