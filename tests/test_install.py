"""A non-editable install (a built wheel) finds its data in profiles/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_carries_the_profiles_and_plugins(tmp_path):
    # Build from a clean copy: setuptools reuses a build/ folder, which could hold stale modules.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", "build", "*.egg-info", ".git", ".pytest_cache", ".hypothesis", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("autotune-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for data in ("gpus.yaml", "rules.yaml", "architectures.yaml", "sources.yaml"):
        assert f"autotune_profiles/{data}" in names
    # Every module of the source tree, in every stage's and plugin's folder: a package missing
    # from pyproject.toml's list would be missing here.
    for folder, installed_as in (("autotune", "autotune"), ("plugins", "autotune_plugins")):
        for module in (REPO / folder).rglob("*.py"):
            assert f"{installed_as}/{module.relative_to(REPO / folder).as_posix()}" in names, module
    assert "autotune/torch_inspect.py" not in names
    # Run from the unpacked wheel, away from the source tree.
    code = ("import autotune, autotune_profiles; from autotune.cli.main import main\n"
            "assert autotune_profiles.__file__.startswith({!r}), autotune_profiles.__file__\n"
            "main(['recommend', '--gpu', 't4', '--format', 'json'])\n").format(str(tmp_path / "site"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr[-800:]
    assert '"precision": "fp16"' in result.stdout
