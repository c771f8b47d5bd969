#!/usr/bin/env bash
# Build the lab's real 3scale operator (its capabilities controllers) from the Go module
# github.com/3scale/3scale-operator (module lab/operator, a `main` of ours), once, and copy its CRDs
# (config/crd/bases in the module) next to the binary: ${MAASLAB_CACHE:-~/.cache/maaslab}/operator/<key>
# (key = go.mod + go.sum + main + this script), linked from .venv/operator-bin. A cold build takes
# about 2 minutes on 2 cores; later ones only link.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(awk '$1=="github.com/3scale/3scale-operator"{print $2}' lab/operator/go.mod)
key=$(cat lab/operator/go.mod lab/operator/go.sum lab/operator/cmd/*/main.go hack/build-operator.sh | sha256sum | cut -c1-16)
cache=${MAASLAB_CACHE:-$HOME/.cache/maaslab}/operator/$key
link=.venv/operator-bin
mkdir -p .venv
if [ -x "$cache/threescale-operator" ] && [ -n "$(ls "$cache/crds" 2>/dev/null)" ]; then
  ln -sfn "$cache" "$link"
  echo "setup: 3scale operator $VERSION already built ($cache)"
  exit 0
fi
command -v go >/dev/null || { echo "setup: go not found: the lab's 3scale operator is built with Go >= 1.26" >&2; exit 1; }
rm -rf "$cache.tmp" && mkdir -p "$cache.tmp/crds"
start=$(date +%s)
echo "setup: building the 3scale operator $VERSION (capabilities controllers) from the Go module proxy"
(
  cd lab/operator
  echo "setup: [1/2] downloading modules"
  go mod download
  echo "setup: [2/2] compiling (a line every 100 packages; about 450 on a cold cache)"
  go build -v -trimpath -ldflags "-s -w" -o "$cache.tmp/" ./cmd/threescale-operator 2>&1 \
    | awk -v t0="$start" '{ n++; if (n % 100 == 0) { printf "setup:   %d packages compiled (%ds)\n", n, systime() - t0; fflush() } }
                          END { printf "setup:   %d packages compiled\n", n }'
  [ "${PIPESTATUS[0]}" = 0 ] || exit 1
  # The CRDs the controllers serve, as the module carries them (never copied into this repository).
  src=$(go list -m -f '{{.Dir}}' github.com/3scale/3scale-operator)
  cp "$src"/config/crd/bases/capabilities.3scale.net_*.yaml "$cache.tmp/crds/"
  chmod u+w "$cache.tmp/crds/"*.yaml
)
[ -x "$cache.tmp/threescale-operator" ] || { echo "setup: threescale-operator was not built" >&2; exit 1; }
rm -rf "$cache" && mv "$cache.tmp" "$cache"
ln -sfn "$cache" "$link"
echo "setup: 3scale operator $VERSION built in $(( $(date +%s) - start ))s ($(find "$cache/crds" -name '*.yaml' | wc -l) CRDs)"
