#!/usr/bin/env bash
# `make demo`: start the embedded lab (or reuse it), onboard the lab inventory's model through the
# real playbook, and show what the production gateway answered. Keys are never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
LAB_DIR=$(realpath -m "${1:-.lab}")
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
t0=$(date +%s.%N)
python -m maaslab up --dir "$LAB_DIR"
# shellcheck disable=SC1091
source "$LAB_DIR/lab.env"
report="$LAB_DIR/demo-report.json"
rm -f "$report"
ansible-playbook -i inventories/lab playbooks/onboard_model.yml -e "maas_report_file=$report"
t1=$(date +%s.%N)
python - "$report" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    print(f"\nmodel {m['model_id']} ({m['product']}) at {m['production_endpoint']}")
    print(f"  accounts with applications: {', '.join(a['account'] for a in m['applications'])}")
    s = m["smoke_test"]
    print(f"  POST /v1/completions -> {s['status']} in {s['latency_ms']} ms: {s['text']!r}")
    print(f"  usage: {s['usage']}")
PY
python -c "import sys; print(f\"\\ndemo finished in {float(sys.argv[2])-float(sys.argv[1]):.1f}s; lab keeps running: make lab-down LAB_DIR={sys.argv[3]}\")" "$t0" "$t1" "$LAB_DIR"
