"""unknown_variables: a misspelt maas_* variable is named with the nearest known one; other unknown
maas_* names are listed; the known list is the one hack/variables.py keeps (checked in make test)."""
from __future__ import annotations

from ansible_collections.maas.threescale.plugins.filter.variables import FilterModule
from ansible_collections.maas.threescale.plugins.plugin_utils.known_variables import KNOWN_VARIABLES

unknown_variables = FilterModule().filters()["unknown_variables"]


def test_typos_name_the_nearest_known_variable_and_others_are_listed():
    out = unknown_variables(["maas_modle_id", "maas_models", "maas_smoke_tset", "maas_team_owner", "ansible_host",
                             "maas_prune_alow_empty", "maas_models"])
    assert [m.split(" ")[0] for m in out["typos"]] == ["maas_modle_id", "maas_prune_alow_empty", "maas_smoke_tset"]
    assert "did you mean maas_model_id?" in out["typos"][0] and "nothing was changed" in out["typos"][0]
    assert "did you mean maas_prune_allow_empty?" in out["typos"][1]
    assert "did you mean maas_smoke_test?" in out["typos"][2]
    assert out["unknown"] == ["maas_team_owner"]


def test_every_known_name_passes_and_the_list_covers_playbooks_and_roles():
    assert unknown_variables(sorted(KNOWN_VARIABLES)) == {"typos": [], "unknown": []}
    for name in ("maas_models", "maas_model_id", "maas_prune", "maas_smoke_test_delay", "maas_product_models",
                 "maas_workshop_users", "maas_endpoint_check", "maas_catalog_result"):
        assert name in KNOWN_VARIABLES, name
    assert unknown_variables(["maas_team_owner"], known=["maas_y"]) == {"typos": [], "unknown": ["maas_team_owner"]}
    assert unknown_variables(None) == {"typos": [], "unknown": []}
