"""Every file autotune reads, bad in every way, through the real command line: one line on
stderr naming the file, the problem and the fix, exit 2, nothing written.

The table is READERS (a command and where its file goes) x BAD (what is wrong with the
file); a new command that reads a file is one more READERS line.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from autotune import files
from autotune.errors import UserError
from autotune.model_inputs import from_shape
from tests.conftest import RECORDINGS
from tests.test_cli import one_line_error, run


@dataclass(frozen=True)
class Format:
    """A kind of file autotune reads: a good one, the same cut short, and its reader's limit."""

    name: str
    text: bool
    max_bytes: int
    good: Callable[[], bytes]
    cut_at: Callable[[bytes], int]  # where to cut a good file so that it no longer parses
    truncated_says: str  # a regex: what the error says about the cut-short file
    needs: str | None = None  # a module the reader needs; its rows are skipped without it


def _onnx_model() -> bytes:
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _npy() -> bytes:
    np = pytest.importorskip("numpy")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 3, 32, 32), dtype=np.float32))
    return buffer.getvalue()


def _pt() -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save(torch.zeros(4, 3, 32, 32), buffer)
    return buffer.getvalue()


def _half(data: bytes) -> int:
    return len(data) // 2


CONFIG_YAML = Format("config file", True, files.CONFIG_MAX_BYTES,
                     lambda: b"batch_size: 8\nbackends: [torch]\n",
                     lambda data: data.index(b"[tor") + 4, "is not valid YAML")
CONFIG_TOML = Format("config file", True, files.CONFIG_MAX_BYTES,
                     lambda: b'batch_size = 8\ntier = "balanced"\n',
                     lambda data: data.index(b'"bal') + 4, "is not valid TOML")
PYPROJECT = Format("config file", True, files.CONFIG_MAX_BYTES,
                   lambda: b'[project]\nname = "x"\n\n[tool.autotune]\nbatch_size = 8\n',
                   lambda data: data.index(b"autotune]"), "is not valid TOML")
RECORDING = Format("NVML recording", True, files.NVML_RECORDING_MAX_BYTES,
                   lambda: (RECORDINGS / "gtx1660.yaml").read_bytes(),
                   lambda data: data.index(b"{total: ") + 10, "is not valid YAML")
ONNX = Format("ONNX model", False, files.ONNX_MAX_BYTES, _onnx_model, _half, "is not an ONNX model", "onnx")
NPY = Format("inputs", False, files.INPUTS_MAX_BYTES, _npy, _half, "not a complete .npy", "numpy")
PT = Format("inputs", False, files.INPUTS_MAX_BYTES, _pt, _half, "torch.save archive cut short", "torch")

VERIFY = "verify --model tests.test_model_stats:small_cnn --input-shape 3,32,32 --backend torch --budget-s 1"
BENCH = "bench --model tests.test_model_stats:small_cnn --input-shape 3,32,32 --sweep batch=1 --budget-s 0.1"


@dataclass(frozen=True)
class Reader:
    """A command that reads a user's file: ``{file}`` in ``command`` is the file's path,
    ``filename`` where it goes under the test's folder (the current directory)."""

    command: str
    filename: str
    format: Format
    output: bool = False  # takes -o OUT, which must not be created


READERS = [
    Reader("recommend --gpu t4 --config {file}", "team.yaml", CONFIG_YAML, output=True),
    Reader("recommend --gpu t4 --config {file}", "team.toml", CONFIG_TOML, output=True),
    Reader("recommend --gpu t4", "autotune.yaml", CONFIG_YAML, output=True),
    Reader("recommend --gpu t4", "autotune.toml", CONFIG_TOML, output=True),
    Reader("recommend --gpu t4", "pyproject.toml", PYPROJECT, output=True),
    Reader("recommend --gpu t4", "xdg/autotune/autotune.toml", CONFIG_TOML, output=True),  # the user's
    Reader("recommend --replay {file}", "machine.yaml", RECORDING, output=True),
    Reader("probe --replay {file}", "machine.yaml", RECORDING),
    Reader("inspect resnet18 --replay {file}", "machine.yaml", RECORDING),
    Reader("inspect {file}", "model.onnx", ONNX),
    Reader("recommend --gpu t4 --model {file}", "model.onnx", ONNX, output=True),
    Reader(f"{VERIFY} --config {{file}}", "team.yaml", CONFIG_YAML, output=True),
    Reader(f"{BENCH} --config {{file}}", "team.toml", CONFIG_TOML),  # its plot must not appear either
    Reader(BENCH, "autotune.yaml", CONFIG_YAML),
    Reader(f"{VERIFY} --inputs {{file}}", "batch.npy", NPY, output=True),
    Reader(f"{VERIFY} --inputs {{file}}", "batch.pt", PT, output=True),
]


def refuse_to_open(monkeypatch, path: Path) -> list[str]:
    """Make opening ``path`` fail as a file without read permission does (chmod 000 does
    not stop root, who runs these tests). Returns the list of refused opens."""
    real_open = builtins.open
    refused: list[str] = []

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == str(path):
            refused.append(os.fspath(file))
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    return refused


def _binary(path: Path, fmt: Format) -> str:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    return "binary"


def _not_utf8(path: Path, fmt: Format) -> str:
    path.write_bytes(fmt.good() + "# café\n".encode("latin-1"))
    return "not UTF-8"


def _empty(path: Path, fmt: Format) -> str:
    path.write_bytes(b"")
    return "empty"


def _directory(path: Path, fmt: Format) -> str:
    path.mkdir()
    return "directory"


def _unreadable(path: Path, fmt: Format) -> str:
    path.write_bytes(fmt.good())  # good content: only a reader that meets the refusal fails
    return "cannot read .+; check its permissions"  # the OS's reason between them is its own


def _truncated(path: Path, fmt: Format) -> str:
    good = fmt.good()
    path.write_bytes(good[:fmt.cut_at(good)])
    return fmt.truncated_says


def _absurdly_large(path: Path, fmt: Format) -> str:
    with path.open("wb") as file:
        file.truncate(fmt.max_bytes + 1)  # sparse: no disk used, and never read
    return "reads at most"


#: What can be wrong with a file: name -> (for text files only, make it so and say what
#: the error says, as a regex).
BAD = {
    "binary": (True, _binary),
    "not UTF-8": (True, _not_utf8),
    "empty": (False, _empty),
    "directory": (False, _directory),
    "unreadable": (False, _unreadable),
    "truncated": (False, _truncated),
    "absurdly large": (False, _absurdly_large),
}


def _rows():
    for reader in READERS:
        for bad, (text_only, _) in BAD.items():
            if text_only and not reader.format.text:
                continue
            row_id = f"{reader.command.split()[0]} {reader.filename} {bad}"
            yield pytest.param(reader, bad, id=row_id)


@pytest.mark.parametrize("reader, bad", list(_rows()))
def test_a_bad_file_is_one_line_naming_it(capsys, tmp_path, monkeypatch, reader, bad):
    if reader.format.needs:
        pytest.importorskip(reader.format.needs)
    path = tmp_path / reader.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    says = BAD[bad][1](path, reader.format)
    refused = refuse_to_open(monkeypatch, path) if bad == "unreadable" else None
    args = [str(path) if word == "{file}" else word for word in reader.command.split()]
    output = tmp_path / "recommendation.yaml"
    if reader.output:
        args += ["-o", str(output)]
    before = sorted(tmp_path.rglob("*"))
    err = one_line_error(capsys, *args)
    assert path.name in err, err
    assert re.search(says, err), (says, err)
    assert not output.exists()
    assert sorted(tmp_path.rglob("*")) == before  # nothing written anywhere
    if refused is not None:
        assert refused, "the file was read without builtins.open: refuse_to_open must follow files.py"


@pytest.mark.parametrize("filename, content, says", [
    ("team.yaml", b"\xff\xfeb\x00:\x00 \x008\x00", "UTF-16"),  # what PowerShell's > writes
    ("team.yaml", b"  \n\t\n", "only whitespace"),
    # Past our depth limit but within any YAML library's own: autotune's check speaks.
    ("team.yaml", b"[" * 100, "nested more than 64 levels deep"),
    ("team.yaml", b"- " * 100 + b"x", "nested more than 64 levels deep"),
    # Far deeper, where libyaml's loader would crash the process: libyaml's scanner may refuse
    # first (PyYAML 6.0.4 does, in its own words), so only autotune's wrapping is asserted.
    ("team.yaml", b"[" * 50_000, "is not valid YAML at line 1"),
    ("team.yaml", b"- " * 50_000 + b"x", "is not valid YAML at line 1"),
    ("team.toml", b"a = " + b"[" * 50_000, "nested too deeply"),
    ("pyproject.toml", b'tool = "not a table"\n', None),  # no [tool.autotune]: no settings, no error
])
def test_odd_config_files(capsys, tmp_path, filename, content, says):
    path = tmp_path / filename
    path.write_bytes(content)
    args = ["recommend", "--gpu", "t4"] + (["--config", str(path)] if filename != "pyproject.toml" else [])
    if says is None:
        code, _, err = run(capsys, *args)
        assert code == 0, err
    else:
        err = one_line_error(capsys, *args)
        assert filename in err and says in err, err


def test_a_utf8_config_with_a_byte_order_mark_is_read(capsys, tmp_path):
    (tmp_path / "autotune.yaml").write_bytes("\ufeffbatch_size: 8\n".encode())
    code, out, _ = run(capsys, "recommend", "--gpu", "t4")
    assert code == 0 and "batch_size: 8" in out


@pytest.mark.parametrize("content, says", [
    (b"- nvmlInit\n- nvmlShutdown\n", "not a mapping of calls to answers"),
    (b"hello: world\n", "not an NVML call"),
    (b"nvmlDeviceGetHandleByIndex(0): {handle: [1, 2]}\n", "not an NVML call"),
    (b"nvmlInit: {error: {code: 1}}\n", "not an NVML call"),
    (b"nvmlDeviceGetMemoryInfo(gpu0): {1: 2}\n", "not an NVML call"),
    (b"nvmlInit: " + b"[" * 100, "nested more than 64 levels deep"),
    (b"nvmlInit: " + b"[" * 50_000, "is not valid YAML at line 1"),
])
@pytest.mark.parametrize("command", ["probe", "recommend"])
def test_garbled_recordings(capsys, tmp_path, command, content, says):
    path = tmp_path / "machine.yaml"
    path.write_bytes(content)
    err = one_line_error(capsys, command, "--replay", str(path))
    assert "machine.yaml" in err and says in err and "autotune probe --record" in err, err


# load_inputs itself, for what is wrong inside a well-formed .npy or .pt file.
@pytest.mark.parametrize("name, make, says", [
    ("batch.npy", lambda np, torch: np.array([1, "a", None], dtype=object), "Python objects"),
    ("batch.npy", lambda np, torch: np.zeros((4, 3, 8, 8), dtype=np.int64), "hold int64 values"),
    ("batch.npy", lambda np, torch: np.array([["ab"] * 8] * 4), "values; the model takes floats"),
    ("batch.npy", lambda np, torch: np.zeros((4, 3, 9, 9), dtype=np.float32), "hold shape"),
    ("batch.npy", lambda np, torch: np.zeros((0, 3, 8, 8), dtype=np.float32), "no samples"),
    ("batch.npy", lambda np, torch: np.float32(1.0), "hold shape"),
    ("batch.npy", lambda np, torch: b"not numpy at all, not even a pickle", "not a .npy file"),
    ("batch.npy", lambda np, torch: {"a": np.zeros(3)}, "an .npz archive"),
    ("batch.npy", lambda np, torch: b"\x93NUMPY\x01\x00\x10\x00{garbage       }\n", "header is damaged"),
    ("batch.pt", lambda np, torch: {"x": torch.zeros(4, 3, 8, 8)}, "not one tensor"),
    ("batch.pt", lambda np, torch: [torch.zeros(4, 3, 8, 8)], "not one tensor"),
    ("batch.pt", lambda np, torch: torch.zeros(4, 3, 8, 8, dtype=torch.int32), "hold int32 values"),
    ("batch.pt", lambda np, torch: torch.nn.Linear(2, 2), "plain tensors"),
    ("batch.pt", lambda np, torch: b"garbage" * 20, "torch.save file"),
    ("batch.txt", lambda np, torch: b"1 2 3", ".npy or .pt"),
])
def test_what_is_inside_an_inputs_file(tmp_path, name, make, says):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from autotune.measure.accuracy_batch import load_inputs

    path = tmp_path / name
    value = make(np, torch)
    if isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, dict) and name.endswith(".npy"):
        with path.open("wb") as file:
            np.savez(file, **value)
    elif name.endswith(".npy"):
        np.save(path, value)
    else:
        torch.save(value, path)
    with pytest.raises(UserError, match=re.escape(says)) as raised:
        load_inputs(path, from_shape((3, 8, 8)), 4)
    assert name in str(raised.value) and "\n" not in str(raised.value)


def test_good_inputs_come_back_as_float32(tmp_path):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from autotune.measure.accuracy_batch import load_inputs

    np.save(tmp_path / "half.npy", np.ones((2, 3, 8, 8), dtype=np.float16))
    torch.save(torch.ones(2, 3, 8, 8, dtype=torch.bfloat16, requires_grad=True), tmp_path / "bf16.pt")
    for name in ("half.npy", "bf16.pt"):
        batch = load_inputs(tmp_path / name, from_shape((3, 8, 8)), 4)["input"]
        assert batch.dtype == np.float32 and batch.shape == (2, 3, 8, 8) and batch.sum() == 2 * 3 * 64
    assert load_inputs(None, from_shape((3, 8, 8)), 4)["input"].shape == (4, 3, 8, 8)


def test_the_size_is_checked_before_the_file_is_opened(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    with path.open("wb") as file:
        file.truncate(2 * files.MIB)
    refused = refuse_to_open(monkeypatch, path)
    with pytest.raises(UserError, match=r"it is 2\.0 MiB, and autotune reads at most 1\.0 MiB"):
        files.read_user_file(path, "config file", max_bytes=files.CONFIG_MAX_BYTES, text=True, fix="fix")
    assert refused == []


def test_a_pipe_is_refused_without_opening_it(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)  # opening it would wait for a writer forever
    with pytest.raises(UserError, match="not a regular file"):
        files.read_user_file(path, "config file", max_bytes=files.CONFIG_MAX_BYTES, text=True, fix="fix")


def test_reading_a_user_file_imports_no_framework():
    code = ("import sys, autotune.files, autotune.measure.accuracy_batch, autotune.config, "
            "autotune.hardware.nvml_recording; "
            "print(sorted({'numpy', 'torch', 'onnx'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
