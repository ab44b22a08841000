"""``import autotune.auto`` takes a precision measured on this machine over the rules' guess,
and where nothing was measured says which faster precision the rules left untried."""

from __future__ import annotations

import json
from types import SimpleNamespace

from autotune.machine_profiles.store import read_profile
from autotune.training import config as training_config
from autotune.training.config import TrainingConfig, load_training_config, summary
from tests.test_auto import run_script


def test_a_measured_precision_outlives_a_change_of_the_rules(tmp_path, monkeypatch):
    run_script(tmp_path)
    (path,) = (tmp_path / "store").glob("*.train.yaml")
    data = read_profile(path).to_dict()
    data["fingerprint"]["rules_hash"] = "another"
    data["recommendations"][0]["measured"] = True
    data["recommendations"][0]["settings"]["precision"] = "bf16"  # verify measured BF16 faster here
    path.write_text(json.dumps(data))
    asked = []

    def rules(machine, **overrides):
        asked.append(overrides)
        return SimpleNamespace(settings={"device": "cpu", "precision": overrides.get("precision", "fp32"),
                                         "alternative_precision": "bf16"}, decisions=[])

    monkeypatch.setattr(training_config, "_rules_recommendation", rules)
    config = load_training_config({"AUTOTUNE_STORE": str(tmp_path / "store"), "AUTOTUNE_PROFILE": str(path)})
    assert asked == [{"precision": "bf16"}] and config.precision == "bf16" and config.source == "rules"
    assert config.unmeasured_alternative is None  # measured: nothing left untried to mention


def test_an_unmeasured_faster_precision_is_said_in_the_one_line():
    recommendation = SimpleNamespace(settings={"device": "cpu", "precision": "fp32", "batch_size": 8,
                                               "alternative_precision": "bf16"}, decisions=[])
    rules_only = TrainingConfig.from_recommendation(recommendation, "rules")
    assert rules_only.unmeasured_alternative == "bf16"
    line = summary(rules_only)
    assert "fp32, batch 8 on cpu" in line and "BF16 may run faster on this CPU, not measured here" in line
    measured = TrainingConfig.from_recommendation(recommendation, "profile", measured=True)
    assert measured.unmeasured_alternative is None and "BF16" not in summary(measured)
