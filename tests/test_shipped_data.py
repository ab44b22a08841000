"""The profiles are parsed from YAML once per content and kept as JSON for the next process:
a second read parses nothing, an edited profile is a miss, and a cache folder that cannot be
written only costs the speed."""

from __future__ import annotations

import pathlib

import pytest

from autotune import shipped_data


@pytest.fixture
def parses(monkeypatch):
    """How many times YAML was parsed."""
    count = []
    real = shipped_data.read_yaml_text
    monkeypatch.setattr(shipped_data, "read_yaml_text", lambda text: count.append(text) or real(text))
    return count


def test_the_second_read_of_the_same_text_parses_nothing(parses):
    text = "gpus:\n  - name: T4\n    vram_gb: 16\n"
    assert shipped_data.parsed_once("specs.yaml", text) == {"gpus": [{"name": "T4", "vram_gb": 16}]}
    assert shipped_data.parsed_once("specs.yaml", text) == {"gpus": [{"name": "T4", "vram_gb": 16}]}
    assert len(parses) == 1


def test_an_edited_profile_is_parsed_again(parses):
    assert shipped_data.parsed_once("specs.yaml", "a: 1\n") == {"a": 1}
    assert shipped_data.parsed_once("specs.yaml", "a: 2\n") == {"a": 2}
    assert len(parses) == 2


def test_data_json_cannot_hold_is_parsed_every_time(parses):
    text = "1: one\nwhen: 2026-12-06\n"
    first = shipped_data.parsed_once("odd.yaml", text)
    assert shipped_data.parsed_once("odd.yaml", text) == first and 1 in first
    assert len(parses) == 2


def test_an_unwritable_cache_folder_still_gives_the_data(tmp_path, monkeypatch, parses):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert shipped_data.parsed_once("specs.yaml", "a: 1\n") == {"a": 1}
    assert shipped_data.parsed_once("specs.yaml", "a: 1\n") == {"a": 1}
    assert len(parses) == 2


def test_every_shipped_profile_reads_the_same_from_the_cache():
    for name in shipped_data.profile_names():
        text = (shipped_data.resources.files("autotune_profiles") / name).read_text("utf-8")
        assert shipped_data.parsed_once(name, text) == shipped_data.read_yaml_text(text)


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def full_disk(self, *args, **kwargs):
        self.touch()  # the write began, then the disk filled
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    assert shipped_data.parsed_once("specs.yaml", "a: 1\n") == {"a": 1}
    left = list((tmp_path / "xdg-cache").rglob("*"))  # conftest points XDG_CACHE_HOME there
    assert not [path for path in left if path.is_file()], left
