"""The accuracy batch: the user's ``--inputs`` file (``.npy`` or ``.pt``), or seeded synthetic inputs
fitting the model's input description.

numpy and torch are imported inside :func:`load_inputs`, so importing this module
costs nothing. Every problem with the file is one UserError naming it.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from autotune.errors import UserError
from autotune.files import INPUTS_MAX_BYTES, open_user_file
from autotune.model_inputs import ModelInputs, synthetic_batch

if TYPE_CHECKING:
    import numpy

_SAVE_FIX = "save one batch with numpy.save or torch.save"


def _first_sentence(error: BaseException) -> str:
    """The library's own words, first sentence only: its advice is for programmers."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    text = " ".join(text.split()).split(". ")[0].rstrip(".") or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# What a file's first bytes say it is: numpy.save writes the first, numpy.savez a zip archive.
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _npy_header_dtype(file: BinaryIO, path: Path) -> numpy.dtype:
    """The dtype a .npy file's header declares, read before numpy loads any data; the file is
    left at its start."""
    import numpy as np  # noqa: PLC0415

    try:
        major, _ = np.lib.format.read_magic(file)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = header(file)
    except Exception as error:  # noqa: BLE001 - a header numpy cannot parse, in any of its words
        raise UserError(f"cannot read inputs {path}: its .npy header is damaged ({_first_sentence(error)}); "
                        f"{_SAVE_FIX}") from None
    finally:
        file.seek(0)
    return dtype


def _load_npy(path: Path, floats: bool) -> numpy.ndarray:
    import numpy as np  # noqa: PLC0415

    with open_user_file(path, "inputs", max_bytes=INPUTS_MAX_BYTES, fix=_SAVE_FIX) as file:
        magic = file.read(len(_NPY_MAGIC))
        file.seek(0)
        if magic.startswith(_ZIP_MAGIC):
            raise UserError(f"cannot read inputs {path}: it is an .npz archive, not one array; {_SAVE_FIX}")
        if magic != _NPY_MAGIC:
            raise UserError(f"cannot read inputs {path}: it is not a .npy file (no .npy header); "
                            f"{_SAVE_FIX}")
        if _npy_header_dtype(file, path).hasobject:
            raise UserError(f"cannot read inputs {path}: it holds an array of Python objects, which "
                            "autotune does not unpickle; save one float batch with numpy.save")
        try:
            data = np.load(file, allow_pickle=False)
        except Exception as error:  # noqa: BLE001 - numpy raises ValueError, EOFError, OSError...
            raise UserError(f"cannot read inputs {path}: it is not a complete .npy file "
                            f"({_first_sentence(error)}); {_SAVE_FIX}") from None
    if floats and not np.issubdtype(data.dtype, np.floating):
        raise UserError(f"inputs {path} hold {data.dtype} values; the model takes floats: "
                        f"save the float batch it takes, e.g. numpy.save(path, batch.astype('float32'))")
    if not floats and not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
        raise UserError(f"inputs {path} hold {data.dtype} values; the model takes integers (token ids): "
                        f"save them as integers, e.g. numpy.save(path, ids.astype('int64'))")
    return data


def _load_pt(path: Path, floats: bool) -> numpy.ndarray:
    import torch  # noqa: PLC0415

    with open_user_file(path, "inputs", max_bytes=INPUTS_MAX_BYTES, fix=_SAVE_FIX) as file:
        try:
            with warnings.catch_warnings():  # torch's warnings would break the one-line error
                warnings.simplefilter("ignore")
                # weights_only: loading a tensor file runs no code from it.
                data = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UserError(f"cannot read inputs {path}: it is not a torch.save file of plain tensors "
                            "(autotune loads with weights_only=True, which refuses other objects); "
                            "torch.save(batch, path) with the batch tensor alone") from None
        except Exception as error:  # noqa: BLE001 - a truncated zip archive, an unknown format...
            file.seek(0)
            # torch.save writes a zip archive; anything else is some other file.
            problem = ("a torch.save archive cut short or damaged" if file.read(4) == b"PK\x03\x04"
                       else "not a torch.save file")
            raise UserError(f"cannot read inputs {path}: it is {problem} ({_first_sentence(error)}); "
                            f"{_SAVE_FIX}") from None
    if not isinstance(data, torch.Tensor):
        raise UserError(f"inputs {path} hold an object of type {type(data).__name__}, not one tensor; "
                        "torch.save(batch, path) with the batch tensor alone")
    if floats != data.is_floating_point():
        wanted = ("floats: save the float batch it takes, e.g. torch.save(batch.float(), path)" if floats
                  else "integers (token ids): save them as integers, e.g. torch.save(ids.long(), path)")
        raise UserError(f"inputs {path} hold {str(data.dtype).removeprefix('torch.')} values; the model "
                        f"takes {wanted}")
    try:
        return (data.detach().float() if floats else data.detach()).numpy()
    except Exception as error:  # noqa: BLE001 - a sparse or quantized tensor
        raise UserError(f"inputs {path} hold a tensor autotune cannot read as an array "
                        f"({_first_sentence(error)}); torch.save a plain dense tensor") from None


def load_inputs(path: Path | None, inputs: ModelInputs, count: int) -> dict[str, numpy.ndarray]:
    """The accuracy batch, one array per named input: the user's ``.npy``/``.pt`` file (for
    a model with one input), or ``count`` seeded synthetic samples (see
    :func:`autotune.model_inputs.synthetic_batch`) when ``path`` is None.

    Raises UserError, naming the file, when it cannot be read, is not one array or tensor,
    does not hold samples of the input's shape and kind, or the model takes several inputs.
    """
    if path is None:
        return synthetic_batch(inputs, count)
    path = Path(path)
    if len(inputs.inputs) > 1:
        raise UserError(f"inputs {path} hold one array, but the model takes {len(inputs.inputs)} inputs "
                        f"({', '.join(inputs.names)}); leave --inputs out to check accuracy on "
                        "synthetic inputs")
    spec = inputs.primary
    if path.suffix == ".npy":
        data = _load_npy(path, spec.is_float)
    elif path.suffix == ".pt":
        data = _load_pt(path, spec.is_float)
    else:
        raise UserError(f"inputs {path} must be a .npy or .pt file holding one batch")
    if data.ndim == 0 or tuple(data.shape[1:]) != tuple(spec.shape):
        raise UserError(f"inputs {path} hold shape {tuple(data.shape)}; the model takes "
                        f"(batch, {', '.join(map(str, spec.shape))}); pass matching --input-shape")
    if data.shape[0] == 0:
        raise UserError(f"inputs {path} hold no samples (shape {tuple(data.shape)}); {_SAVE_FIX}")
    return {spec.name: data.astype(spec.dtype)}
