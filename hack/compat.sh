#!/usr/bin/env bash
# The oldest versions the collection claims, tested: ansible-core from meta/runtime.yml's requires_ansible
# (its newest patch release) and kubernetes.core from galaxy.yml's dependencies, in a venv of their own
# (.venv/compat). Runs the unit tests and one lab onboarding (then its re-run, which must change nothing).
# The newest ansible-core for this Python is what every other stage runs (test-requirements.txt).
#   hack/compat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CORE=2.16.20          # newest 2.16 patch release: requires_ansible ">=2.16.0"
KCORE=3.0.1           # galaxy.yml kubernetes.core ">=3.0.1" (3.0.0 is in no `ansible` wheel on PyPI)
KCORE_FROM_ANSIBLE=10.0.0a1   # the `ansible` bundle that ships kubernetes.core 3.0.1
VENV=$ROOT/.venv/compat   # inside .venv: ignored by git, the build and the sanity copy like the main venv
t0=$(date +%s)

want=$(printf '%s %s %s\n' "$CORE" "$KCORE" "$(sha256sum requirements.txt | cut -c1-16)")
if [ "$(cat "$VENV/.compat-stamp" 2>/dev/null)" != "$want" ]; then
  echo "compat: creating $VENV (ansible-core $CORE, kubernetes.core $KCORE)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # the collection's own requirements, and what the unit tests import (versions as test-requirements.txt)
  "$VENV/bin/pip" install -q "ansible-core==$CORE" -r requirements.txt "pytest==9.2.0" "pytest-timeout==2.4.0" \
    "cryptography>=42,<51" "PyYAML>=6.0" "requests>=2.31"
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps "ansible==$KCORE_FROM_ANSIBLE" -d "$tmp"
  "$VENV/bin/python" hack/kcore_from_wheel.py "$tmp"/ansible-*.whl "$VENV/collections/ansible_collections" "$KCORE"
  rm -rf "$tmp"
  echo "$want" > "$VENV/.compat-stamp"
fi
mkdir -p "$VENV/collections/ansible_collections/maas"
ln -sfn "$ROOT" "$VENV/collections/ansible_collections/maas/threescale"
export ANSIBLE_COLLECTIONS_PATH="$VENV/collections"
"$VENV/bin/python" -c "import ansible.release as r, sys; sys.exit(r.__version__ != '$CORE')"

echo "compat: unit tests on ansible-core $CORE"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -o tmp_path_retention_policy=failed tests/unit

echo "compat: one lab onboarding on ansible-core $CORE + kubernetes.core $KCORE"
lab=$(mktemp -d "${TMPDIR:-/tmp}/compat-lab.XXXXXX")
cleanup() { "$ROOT/.venv/bin/python" -m maaslab down --dir "$lab" >/dev/null 2>&1 || true; rm -rf "$lab"; }
trap cleanup EXIT
"$ROOT/.venv/bin/python" -m maaslab up --dir "$lab" >/dev/null
# shellcheck disable=SC1091
. "$lab/lab.env"
for run in first re-run; do
  out=$("$VENV/bin/ansible-playbook" -i inventories/lab playbooks/onboard_model.yml 2>&1) || {
    echo "$out" | tail -40; echo "compat: the $run onboarding failed on ansible-core $CORE" >&2; exit 1; }
  recap=$(echo "$out" | grep -E '^lab +:' | tail -1)
  echo "compat: $run: $recap"
  echo "$out" | grep -q 'answered completions through' || { echo "compat: no smoke test answer" >&2; exit 1; }
  if [ "$run" = re-run ] && ! echo "$recap" | grep -q 'changed=0 '; then
    echo "compat: the re-run changed something on ansible-core $CORE" >&2; exit 1
  fi
done
echo "compat: passed in $(( $(date +%s) - t0 ))s (ansible-core $CORE, kubernetes.core $KCORE)"
