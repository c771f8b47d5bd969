"""The maas_product role's promotion decisions (plugins/plugin_utils/promotion.py), one test per
transition: due -> attempt -> failed -> outcome (done or still behind) -> set aside, and the record of
what was promoted. Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go
(a Failed PCP is replaced; staging is deployed before the promote, so production == staging after a
failure means nothing was left to promote)."""
from __future__ import annotations

from ansible_collections.maas.threescale.plugins.filter.promotion import FilterModule

F = FilterModule().filters()
MODELS = [{"name": "a", "system_name": "a", "config_hash": "h-a", "exists": True},
          {"name": "b", "system_name": "b", "config_hash": "h-b", "exists": True},
          {"name": "c", "system_name": "c", "config_hash": "h-c", "exists": False},
          {"name": "d", "system_name": "d", "config_hash": "h-d", "exists": True}]


def test_due_staging_ahead_no_production_or_specs_never_promoted():
    infos = [{"promotion_due": True, "production_version": 2},      # staging ahead
             {"promotion_due": False, "production_version": None},  # never promoted
             {"promotion_due": False, "production_version": 1},     # specs changed by an interrupted run
             {"promotion_due": False, "production_version": 4}]     # current
    state = {"a": {"promoted_config": "h-a"}, "b": {"promoted_config": "h-b"}, "c": {"promoted_config": "old"},
             "d": {"promoted_config": "h-d"}}
    assert F["promotion_due"](MODELS, infos, state) == ["a", "b", "c"]


PCPS = [{"model": m["name"], "system_name": m["system_name"], "name": m["name"] + "-pcp-1"} for m in MODELS[:3]]


def test_failed_promotions_are_failed_or_timed_out_waits():
    wait = [{"name": "a-pcp-1", "state": "absent"}, {"name": "b-pcp-1", "state": "failed", "message": "no changes"},
            {"name": "c-pcp-1", "state": "timeout"}]
    assert [p["model"] for p in F["failed_promotions"](PCPS, wait)] == ["b", "c"]
    assert F["failed_promotions"](PCPS, [{"name": "a-pcp-1", "state": "ready"}]) == []


def test_outcome_done_when_production_equals_staging_else_still_behind():
    wait = [{"name": "b-pcp-1", "state": "failed", "message": "can't promote to production as no product changes"},
            {"name": "c-pcp-1", "state": "timeout"}]
    infos = [{"product": "b", "production_version": 5, "staging_version": 5},
             {"product": "c", "production_version": 3, "staging_version": 4}]
    out = F["promotion_outcome"](PCPS[1:], wait, infos, 300, {"c": ["earlier"]})
    assert out["pending"] == ["c"]
    assert out["errors"] == {
        "b": ["can't promote to production as no product changes (production version 5, staging 5)"],
        "c": ["earlier", "ProxyConfigPromote c-pcp-1 was not Ready after 300 s (production version 3, staging 4)"]}
    none = F["promotion_outcome"](PCPS[2:], wait, [{"product": "c", "production_version": None, "staging_version": 1}], 9)
    assert none["pending"] == ["c"]  # no production configuration at all: still behind


def test_set_aside_after_the_last_attempt_with_each_message_once():
    out = F["unpromoted_failures"](["c"], {"c": ["m1", "m2", "m1"]}, 3)
    assert out == [{"name": "c", "phase": "ProxyConfigPromote",
                    "message": "The 3scale operator could not promote c after 3 ProxyConfigPromote attempt(s): m1; m2"}]
    assert F["unpromoted_failures"]([], {}, 3) == []


def test_promoted_annotations_skip_new_models_in_check_mode():
    settings = {"api_version": "capabilities.3scale.net/v1beta1", "namespace": "3scale",
                "annotation": "maas.threescale/promoted-config"}
    defs = F["promoted_annotations"](MODELS, ["a", "c"], settings)
    assert [(d["metadata"]["name"], d["metadata"]["annotations"]) for d in defs] == [
        ("a", {"maas.threescale/promoted-config": "h-a"}), ("c", {"maas.threescale/promoted-config": "h-c"})]
    assert [d["metadata"]["name"] for d in F["promoted_annotations"](MODELS, ["a", "c"], settings, True)] == ["a"]


def test_promoted_state_from_cr_wait_results_or_dry_run_objects():
    key = "maas.threescale/promoted-config"
    seen = [{"name": "a", "annotations": {key: "h-a"}}, {"metadata": {"name": "b", "annotations": {key: "h-b"}}},
            {"metadata": {"name": "c"}}, "not an object"]
    assert F["promoted_state"](MODELS, seen, key) == {
        "a": {"promoted_config": "h-a"}, "b": {"promoted_config": "h-b"}, "c": {"promoted_config": ""},
        "d": {"promoted_config": ""}}


def test_production_behind_after_promotion():
    infos = [{"product": "a", "production_version": 3, "staging_version": 3},
             {"product": "b", "production_version": 2, "staging_version": 3},
             {"product": "c", "production_version": None, "staging_version": 1}]
    out = F["production_behind"](MODELS[:3] + [MODELS[3]], infos)
    assert [(f["name"], f["phase"]) for f in out] == [("b", "promotion"), ("c", "promotion"), ("d", "promotion")]
    assert out[0]["message"] == "Product b: production configuration version 2 differs from staging 3 after promotion."
