#!/usr/bin/env bash
# `make demo`: start the embedded lab (or reuse it), onboard the lab inventory's model through the
# real playbook (its full output kept in $LAB_DIR/demo.log, a compact progress shown), then print what
# a user of the model needs: the OpenAI base URL, the lab user's key, an OpenAI SDK snippet and a curl.
set -euo pipefail
cd "$(dirname "$0")/.."
LAB_DIR=$(realpath -m "${1:-.lab}")
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/collections"
export PYTHONPATH="$PWD/.venv/collections${PYTHONPATH:+:$PYTHONPATH}"
t0=$(date +%s.%N)
python -m maaslab up --dir "$LAB_DIR"
# shellcheck disable=SC1091
source "$LAB_DIR/lab.env"
report="$LAB_DIR/demo-report.json"
log="$LAB_DIR/demo.log"
rm -f "$report"
echo "Onboarding the lab inventory's model (ansible-playbook -i inventories/lab playbooks/onboard_model.yml)"
rc=0
ANSIBLE_NOCOLOR=1 ansible-playbook -i inventories/lab playbooks/onboard_model.yml -e "maas_report_file=$report" 2>&1 \
  | python hack/demo_progress.py "$log" || rc=$?  # pipefail: ansible-playbook's failure is rc
if [ "$rc" != 0 ] || [ ! -s "$report" ]; then
  echo "The onboarding failed; the end of its output ($log has all of it):" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
python hack/demo_summary.py "$report" "$LAB_DIR" "$log"
python -c "import sys; print(f\"demo finished in {float(sys.argv[2])-float(sys.argv[1]):.1f}s; the lab keeps running (make lab-down LAB_DIR={sys.argv[3]}); source {sys.argv[3]}/lab.env to run the playbooks against it\")" "$t0" "$(date +%s.%N)" "$LAB_DIR"
