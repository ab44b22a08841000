"""A verified config claims only what was measured (issue 27, point 3), and ``verify --json
-o FILE`` writes the JSON there (point 8)."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import one_line_error, run

SMALL = ("--model", "tests.test_model_stats:small_cnn", "--input-shape", "3,32,32")


@pytest.mark.usefixtures("quick_timing")
def test_json_with_an_output_file_writes_the_json_there(capsys, tmp_path):
    pytest.importorskip("torch")
    written = tmp_path / "verified.json"
    code, out, err = run(capsys, "verify", *SMALL, "--backend", "torch", "--budget-s", "3", "--json",
                         "-o", str(written))
    assert code == 0, err
    assert out == "" and f"wrote {written}" in err
    document = json.loads(written.read_text())
    assert document["measured"] is True and document["settings"]["backends"][0] == "torch"


def test_json_with_another_format_is_refused_before_measuring(capsys, tmp_path):
    message = one_line_error(capsys, "verify", *SMALL, "--json", "--format", "yaml", "-o",
                             str(tmp_path / "x.yaml"))
    assert "--json and --format yaml ask for two formats" in message
    assert not (tmp_path / "x.yaml").exists()
