#!/usr/bin/env bash
# Create .venv with everything the project and its tests need, with no access to Galaxy.
# kubernetes.core is not on PyPI on its own: it is taken out of the `ansible` community
# wheel (the collection folder only, 1.2 MB) into .venv/collections.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
KCORE_FROM_ANSIBLE=12.3.0   # newest community bundle for Python 3.11; ships kubernetes.core 6.2.0
# Debian's chromium for the usage report's browser test (tests/integration/test_usage_report.py):
# installed only as root with apt-get, quietly; without it that test is skipped, nothing else needs it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
   && [ "${MAAS_SKIP_CHROMIUM:-}" != 1 ]; then
  echo "setup: installing chromium (apt-get) for the usage report browser test"
  { DEBIAN_FRONTEND=noninteractive apt-get -qq update \
    && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends chromium; } >/dev/null 2>&1 \
    || echo "setup: chromium could not be installed; the browser test will be skipped"
fi
# The lab's Kubernetes control plane, built from the Go module proxy (cached; a no-op when built).
hack/build-k8s.sh
# The lab's 3scale operator (its capabilities controllers), from its Go module (cached likewise).
hack/build-operator.sh
stamp=$VENV/.setup-stamp
want=$(cat requirements.txt test-requirements.txt hack/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"; exit 0
fi
[ -x $VENV/bin/python ] || $PY -m venv $VENV
$VENV/bin/pip install -q --upgrade pip
$VENV/bin/pip install -q -r requirements.txt -r test-requirements.txt
$VENV/bin/pip install -q -e lab
coll=$VENV/collections/ansible_collections
if [ ! -f $coll/kubernetes/core/MANIFEST.json ]; then
  tmp=$(mktemp -d)
  $VENV/bin/pip download -q --no-deps "ansible==$KCORE_FROM_ANSIBLE" -d "$tmp"
  mkdir -p $coll
  printf 'setup: '
  $VENV/bin/python hack/kcore_from_wheel.py "$tmp"/ansible-*.whl "$coll"
  rm -rf "$tmp"
fi
# Our own collection, visible to ansible as maas.threescale from this checkout.
mkdir -p $coll/maas
ln -sfn "$(pwd)" $coll/maas/threescale
echo "$want" > "$stamp"
echo "setup: done (ansible-core $($VENV/bin/python -c "import ansible.release as r; print(r.__version__)"))"
