"""TF32 for PyTorch's FP32 matmuls and cuDNN convolutions, set so that every reader agrees.

PyTorch keeps two generations of TF32 state side by side (aten/src/ATen/Context.cpp since
torch 2.9; each behaviour below checked on 2.14.1, the locked version): the legacy ones,
``float32_matmul_precision`` (highest/high/medium) and the cuDNN ``allow_tf32`` flag, and the
``fp32_precision`` table of the new API, one entry per backend (generic, cuda, mkldnn) and
operation (all, matmul, conv, rnn), "none" inheriting from the backend's "all", then from
generic. The legacy readers refuse a mix:

- ``torch.get_float32_matmul_precision()`` raises when cuda matmul is tf32 but the legacy
  precision is "highest", or mkldnn matmul is tf32/bf16 but the legacy one is not high/medium;
- ``torch.backends.cuda.matmul.allow_tf32`` raises when the legacy precision and cuda matmul
  disagree;
- ``torch.backends.cudnn.allow_tf32`` and ``torch.backends.cudnn.flags()`` raise unless cuDNN
  conv, cuDNN rnn and the legacy flag all agree.

Setting only the new entries (cuda matmul and cudnn conv, as autotune did) breaks them, and
Lightning (``get_float32_matmul_precision``), Hugging Face's CTC loss (``cudnn.flags``) and
Inductor read them. So TF32 is set through the legacy setters, which write both generations
consistently (``set_float32_matmul_precision``: the legacy precision, cuda and mkldnn matmul;
``cudnn.allow_tf32``: the flag, cuDNN conv and rnn), and, for FP32, cuda's entries are then
pinned to "ieee" so that a script's ``torch.backends.fp32_precision = "tf32"`` cannot make them
inherit TF32. :func:`read_state` and :func:`restore` give back what was there: every reader
answers as it did, a mix the script made included.

Torch older than 2.9 (``torch>=2.4`` is supported) has the legacy state only, or an early,
incompatible form of the table ("default" where 2.9 says "none"): there the legacy state is
all that is read and restored. One state of torch 2.14 has no setter and cannot be put back
(see :func:`_stored`); every reader still answers as before. torch is imported inside the
functions: the core imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The table entries written here (Context::setFloat32MatmulPrecision writes cuda and mkldnn
#: matmul, Context::setAllowTF32CuDNN cuda conv and rnn, set_tf32 cuda's "all"): what a restore
#: puts back.
WRITTEN_ENTRIES = (("cuda", "all"), ("cuda", "matmul"), ("mkldnn", "matmul"), ("cuda", "conv"),
                   ("cuda", "rnn"))


@dataclass(frozen=True)
class Tf32State:
    """PyTorch's TF32 state: the legacy matmul precision and cuDNN flag, and (torch >= 2.9) the
    stored value of each table entry the setters write, "none" where it inherits."""

    matmul_precision: str
    cudnn_allow_tf32: bool
    stored: tuple[tuple[str, str, str], ...] = ()


def has_precision_table() -> bool:
    """Whether the installed torch has the 2.9 form of the ``fp32_precision`` table."""
    import torch  # noqa: PLC0415

    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 9) and hasattr(torch._C, "_get_fp32_precision_getter")


def _stored(backend: str, op: str) -> str:
    """What to store for (backend, op) so that it reads as now: "none" where it inherits from
    its parent ((backend, "all"), then generic), else what it reads.

    torch's getter returns the inherited value, so where the entry reads as its parent does,
    the parent is set to something else for a moment and put back: an entry that follows it
    inherits. torch 2.14 also has an unset state no setter can write back (cuDNN conv and rnn
    start in it, reading "tf32" while their parents read "none", yet following a parent set
    later): such an entry is stored as what it reads, so every reader answers as before.
    """
    import torch  # noqa: PLC0415

    get, put = torch._C._get_fp32_precision_getter, torch._C._set_fp32_precision_setter
    seen = get(backend, op)
    if backend == "generic":  # the root: nothing to inherit from
        return seen
    parent = ("generic", "all") if op == "all" else (backend, "all")
    if get(*parent) != seen:  # reads otherwise than its parent: not inheriting now
        return seen
    parent_stored = _stored(*parent)
    put(*parent, "tf32" if seen == "ieee" else "ieee")
    try:
        inherits = get(backend, op) != seen
    finally:
        put(*parent, parent_stored)
    return "none" if inherits else seen


def read_state() -> Tf32State:
    """The TF32 state now; on torch >= 2.9 read without raising, whatever mix of APIs the
    script used."""
    import torch  # noqa: PLC0415

    if not has_precision_table():
        return Tf32State(torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    put = torch._C._set_fp32_precision_setter
    stored = tuple((backend, op, _stored(backend, op)) for backend, op in WRITTEN_ENTRIES)
    try:
        # With both matmul entries "ieee" the legacy getter has no mix to refuse.
        put("cuda", "matmul", "ieee")
        put("mkldnn", "matmul", "ieee")
        matmul_precision = torch.get_float32_matmul_precision()
        # The legacy cuDNN flag has one getter, which raises unless conv, rnn and the flag agree
        # (Context::allowTF32CuDNN): with conv and rnn "ieee" it answers only when the flag is off.
        put("cuda", "conv", "ieee")
        put("cuda", "rnn", "ieee")
        try:
            cudnn_allow_tf32 = torch.backends.cudnn.allow_tf32
        except RuntimeError:
            cudnn_allow_tf32 = True
    finally:
        for backend, op, value in stored:
            put(backend, op, value)
    return Tf32State(matmul_precision, cudnn_allow_tf32, stored)


def set_tf32(enabled: bool) -> None:
    """TF32 on or off for CUDA matmuls and cuDNN convolutions and RNNs, every reader agreeing.
    Off means IEEE FP32 for all of them, convolutions included (stock PyTorch runs cuDNN
    convolutions in TF32)."""
    import torch  # noqa: PLC0415

    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    if has_precision_table() and not enabled:
        # allow_tf32 = False leaves conv and rnn "none", inheriting cuda's "all", then generic's,
        # which a script may have set to "tf32" (torch.backends.fp32_precision): pinned to
        # "ieee", and cuda's "all" with them, since cudnn.flags() (Hugging Face's CTC loss)
        # writes conv and rnn back to "none" on leaving.
        put = torch._C._set_fp32_precision_setter
        for op in ("all", "conv", "rnn"):
            put("cuda", op, "ieee")


def restore(state: Tf32State) -> None:
    """Put back the state :func:`read_state` read."""
    import torch  # noqa: PLC0415

    torch.set_float32_matmul_precision(state.matmul_precision)
    torch.backends.cudnn.allow_tf32 = state.cudnn_allow_tf32
    for backend, op, value in state.stored:  # after the legacy setters, which write these too
        torch._C._set_fp32_precision_setter(backend, op, value)


def tf32_in_use() -> tuple[bool, bool]:
    """(CUDA matmuls, cuDNN convolutions) run in TF32, from the per-operation readers, which
    never raise."""
    import torch  # noqa: PLC0415

    if has_precision_table():
        get = torch._C._get_fp32_precision_getter
        return get("cuda", "matmul") == "tf32", get("cuda", "conv") == "tf32"
    return bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)
