"""What one InferenceService's predictor serves, and the server that serves it.

Upstream: kserve pkg/apis/serving/v1beta1/predictor.go (PredictorSpec: model = ModelSpec with the
inlined corev1.Container, so `args`; or custom `containers`); the served name follows vLLM's
`--served-model-name` (vllm/entrypoints/openai/cli_args.py, nargs="+": the first name is the one
responses carry), which OpenShift AI's vLLM ServingRuntime passes as `--served-model-name={{.Name}}`.
"""
from __future__ import annotations

from typing import Any

from ..context import LabContext
from ..model import ModelServer

FLAG = "--served-model-name"


def predictor_args(spec: dict[str, Any]) -> list[str]:
    """Every argument of the predictor: model.args, then each container's args."""
    pred = (spec or {}).get("predictor") or {}
    args = list(((pred.get("model") or {}).get("args")) or [])
    for c in pred.get("containers") or []:
        args.extend((c or {}).get("args") or [])
    return [str(a) for a in args]


def served_names(obj: dict[str, Any]) -> list[str]:
    """The model ids the predictor serves: `--served-model-name=a` or `--served-model-name a [b ...]`,
    else the InferenceService's name (as KServe's runtimes default the model name)."""
    args = predictor_args(obj.get("spec") or {})
    for i, arg in enumerate(args):
        if arg.startswith(FLAG + "="):
            value = arg[len(FLAG) + 1:].strip()
            if value:
                return [value]
        elif arg == FLAG:
            names = []
            for nxt in args[i + 1:]:
                if nxt.startswith("-"):
                    break
                names.append(nxt)
            if names:
                return names
    return [obj["metadata"]["name"]]


class PredictorServer(ModelServer):
    """A vLLM-compatible server for one InferenceService, on port `ports["kserve/<ns>/<name>"]`,
    obeying the `kserve` fault switches addressed to it."""

    def __init__(self, ctx: LabContext, key: str, names: list[str]):
        super().__init__(ctx, names=names, port_name=port_name(key), url_key=None)
        self.key = key

    def faults(self) -> dict[str, Any]:
        f = self.ctx.faults.get("kserve") if self.ctx.faults else {}
        out: dict[str, Any] = {}
        if self.key in (f.get("down") or []):
            out["down"] = True
        delay = (f.get("delay") or {}).get(self.key)
        if delay:
            out["delay"] = float(delay)
        return out


def port_name(key: str) -> str:
    return "kserve/" + key
