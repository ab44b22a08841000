"""``fleet plan`` says which board a short GPU name was planned as ("V100": four boards), and
the fleet picture counts a mixed host under each of its GPU models."""

from __future__ import annotations

from autotune.fleet.summary import hosts_by_model
from autotune.hardware.gpu_database import other_variants, resolve
from tests.test_cli import run

INVENTORY = """\
hosts:
  - host: old-01
    gpus: [{model: V100, count: 2}]
  - host: old-02
    gpus: [{model: V100, count: 2}]
  - host: exact-01
    gpus: [{model: V100 PCIe 16GB, count: 1}]
"""


def test_a_short_name_for_several_boards_is_said_with_the_one_planned(tmp_path, capsys):
    assert set(other_variants("V100", resolve("V100"))) == {"V100 PCIe 32GB", "V100 PCIe 16GB",
                                                            "V100 SXM2 16GB"}
    assert other_variants("V100 PCIe 16GB", resolve("V100 PCIe 16GB")) == ()
    (tmp_path / "hosts.yaml").write_text(INVENTORY)
    code, _, err = run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"),
                       "--out", str(tmp_path / "plan"))
    assert code == 0 and "planned 3 hosts" in err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1  # once per name, not per host; the exact name needs none
    assert "GPU 'V100' planned as V100 SXM2 32GB" in notes[0] and "V100 PCIe 16GB" in notes[0]


def test_a_mixed_host_counts_under_each_of_its_models():
    summary = {"rows": [{"gpus": "1 x L4 + 1 x T4", "precision": "fp16"},
                        {"gpus": "2 x T4", "precision": "fp16"}]}
    counts = hosts_by_model(summary)
    assert counts["L4"]["fp16"] == 1 and counts["T4"]["fp16"] == 2
