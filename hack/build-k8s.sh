#!/usr/bin/env bash
# Build the lab's real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) from
# their Go modules (module lab/k8s), once: the binaries are cached under
# ${MAASLAB_CACHE:-~/.cache/maaslab}/k8s/<key> (key = go.mod + go.sum + this script), Go's module and
# build caches are Go's own (GOMODCACHE, GOCACHE), so a fresh clone on the same machine only links
# .venv/k8s-bin to the cached binaries. A cold build takes about 15 minutes on 2 cores; progress is
# printed while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=$(awk '$1=="k8s.io/kubernetes"{print $2}' lab/k8s/go.mod)
ETCD_VERSION=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' lab/k8s/go.mod)
key=$(cat lab/k8s/go.mod lab/k8s/go.sum lab/k8s/cmd/*/main.go hack/build-k8s.sh | sha256sum | cut -c1-16)
cache=${MAASLAB_CACHE:-$HOME/.cache/maaslab}/k8s/$key
link=.venv/k8s-bin
mkdir -p .venv
bins=(etcd kube-apiserver kube-controller-manager)
have() { for b in "${bins[@]}"; do [ -x "$cache/$b" ] || return 1; done; }
if have; then
  ln -sfn "$cache" "$link"
  echo "setup: Kubernetes $K8S_VERSION + etcd $ETCD_VERSION already built ($cache)"
  exit 0
fi
command -v go >/dev/null || { echo "setup: go not found: the lab's Kubernetes is built with Go >= 1.26" >&2; exit 1; }
mkdir -p "$cache.tmp"
start=$(date +%s)
echo "setup: building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager) and etcd $ETCD_VERSION"
echo "setup: from the Go module proxy; the first build takes about 15 minutes on 2 cores, later ones are cached"
# Version stamps read by kubectl version and every client (k8s.io/component-base/version).
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${ETCD_VERSION}"
(
  cd lab/k8s
  echo "setup: [1/2] downloading modules"
  go mod download
  echo "setup: [2/2] compiling (a line every 100 packages; about 2,000 on a cold cache)"
  # -v prints each package as it is compiled: a progress line every few seconds on a cold cache
  go build -v -trimpath -ldflags "$ldflags" -o "$cache.tmp/" ./cmd/etcd ./cmd/kube-apiserver ./cmd/kube-controller-manager 2>&1 \
    | awk -v t0="$start" '{ n++; if (n % 100 == 0) { printf "setup:   %d packages compiled (%ds)\n", n, systime() - t0; fflush() } }
                          END { printf "setup:   %d packages compiled\n", n }'
  exit "${PIPESTATUS[0]}"
)
for b in "${bins[@]}"; do [ -x "$cache.tmp/$b" ] || { echo "setup: $b was not built" >&2; exit 1; }; done
rm -rf "$cache" && mv "$cache.tmp" "$cache"
ln -sfn "$cache" "$link"
echo "setup: Kubernetes control plane built in $(( $(date +%s) - start ))s: $("$cache/kube-apiserver" --version)"
