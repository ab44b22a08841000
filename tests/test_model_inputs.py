"""The input description: --input-spec, synthetic data by dtype, sizes, tiers around the native size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autotune.errors import UserError
from autotune.model.source import parse_model
from autotune.model.stats import reference_models
from autotune.model_inputs import (
    InputSpec,
    ModelInputs,
    from_shape,
    padded_batch,
    parse_input_spec,
    scale_tier,
    synthetic_batch,
    tier_resolutions,
)

TEXT = "input_ids:int64[S=128]:tokens<30522; attention_mask:int64[S=128]"


def test_a_text_spec_reads_names_dtypes_axes_and_values():
    inputs = parse_input_spec(TEXT)
    ids, mask = inputs.inputs
    assert (ids.name, ids.dtype, ids.shape, ids.axes, ids.values, ids.high) == (
        "input_ids", "int64", (128,), ("sequence",), "tokens", 30522)
    assert (mask.values, mask.high) == ("ones", None)  # a mask nobody described: ones
    assert inputs.kind == "text" and inputs.sequence_length == 128 and inputs.resolution is None
    assert inputs.describe() == ("input_ids: int64[batch, S=128] (token ids < 30522); "
                                 "attention_mask: int64[batch, S=128] (ones)")


def test_an_image_spec_and_input_shape_agree():
    spec = parse_input_spec("input:float32[C=3,H=640,W=480]")
    assert spec == from_shape((3, 640, 480))
    assert spec.kind == "image" and spec.resolution == 640
    assert spec.at(320).primary.shape == (3, 320, 240)  # the width keeps the aspect ratio
    assert parse_input_spec("a:float32[10]; b:float32[C=3,H=32,W=32]").names == ("a", "b")


@pytest.mark.parametrize(("text", "says"), [
    ("input_ids", "does not parse"),
    ("x:complex64[3]", "dtype 'complex64'"),
    ("x:float32[3,Q=4]", "dimension 'Q=4'"),
    ("x:float32[0]", "dimension '0'"),
    ("ids:int64[S=8]:normal", "need a float dtype"),
    ("ids:int64[S=8]:ones<5", "'<N' goes with tokens"),
    ("x:float32[3]; x:float32[3]", "names an input twice"),
    ("x:float32[3]:sparkly", "values 'sparkly'"),
])
def test_a_bad_spec_is_one_line_naming_the_fix(text, says):
    with pytest.raises(UserError, match=says) as raised:
        parse_input_spec(text)
    assert "\n" not in str(raised.value)


def test_input_shape_and_input_spec_together_are_refused():
    with pytest.raises(UserError, match="not both"):
        parse_model("resnet18", "3,224,224", "x:float32[3]")


def test_synthetic_data_fits_each_dtype():
    inputs = parse_input_spec("ids:int64[S=16]:tokens<7; mask:int64[S=16]; "
                              "token_type_ids:int32[S=16]; x:float16[4]")
    batch = synthetic_batch(inputs, 5, seed=3)
    assert batch["ids"].dtype == np.int64 and batch["ids"].shape == (5, 16)
    assert batch["ids"].min() >= 0 and batch["ids"].max() < 7 and len(np.unique(batch["ids"])) > 1
    assert (batch["mask"] == 1).all()
    types = batch["token_type_ids"]
    assert (types == 0).all() and types.dtype == np.int32  # token types: zeros
    assert batch["x"].dtype == np.float16
    assert np.array_equal(batch["ids"], synthetic_batch(inputs, 5, seed=3)["ids"])  # seeded


def test_unknown_vocabulary_draws_ids_every_embedding_accepts():
    batch = synthetic_batch(ModelInputs((InputSpec("ids", (64,), "int64", ("sequence",), "tokens"),)), 4)
    assert set(np.unique(batch["ids"])) <= {0, 1}


def test_tiers_scale_around_the_native_size():
    assert tier_resolutions(224) == tier_resolutions(None) == (160, 224, 320)
    assert tier_resolutions(640) == (448, 640, 928)
    assert scale_tier(640, 224) == 640 and scale_tier(64, 160) == 32  # never below one step


def test_the_description_round_trips_through_the_stats():
    stats = dataclasses.replace(reference_models()["resnet18"], inputs=parse_input_spec(TEXT))
    assert type(stats).from_dict(stats.to_dict()) == stats


def test_a_short_batch_is_padded_with_its_last_sample_and_a_long_one_refused():
    ids = np.array([[3, 4], [5, 6]], dtype=np.int64)
    padded = padded_batch({"input_ids": ids}, 4)["input_ids"]
    # Repeated, not zeros: token ids stay in range and a mask keeps something unmasked.
    assert padded.tolist() == [[3, 4], [5, 6], [5, 6], [5, 6]] and padded.dtype == np.int64
    assert padded_batch({"input_ids": ids}, 2)["input_ids"] is ids
    with pytest.raises(ValueError, match="^input 'input_ids' holds 2 samples, more than the batch of 1$"):
        padded_batch({"input_ids": ids}, 1)
