"""The rules' condition language."""

from __future__ import annotations

import pytest

from autotune.recommendation.conditions import ConditionError, Expression

FACTS = {"gpu.vram_gb": 8.0, "gpu.precisions": ["fp32", "fp16"], "task": "infer",
         "gpu.tensor_cores": True, "host.cpu_cores": 6}


@pytest.mark.parametrize("text, expected", [
    ("gpu.vram_gb >= 7", True),
    ("gpu.vram_gb >= 7 and task == 'train'", False),
    ("gpu.vram_gb < 4 or 'fp16' in gpu.precisions", True),
    ("not gpu.tensor_cores", False),
    ("'bf16' not in gpu.precisions", True),
    ("4 < gpu.vram_gb <= 8", True),
    ("task in ['infer', 'serve']", True),
    ("true", True),
    ("False", False),
    ("min(8, host.cpu_cores // 2 - 1)", 2),
    ("max(1, pow2_floor(64 * gpu.vram_gb / 24))", 16),
    ("pow2_floor(0.3)", 1),
    ("-1 + round(2.6)", 2),
])
def test_expressions(text, expected):
    assert Expression(text, FACTS).evaluate(FACTS) == expected


@pytest.mark.parametrize("text, problem", [
    ("gpu.vram > 4", "unknown fact 'gpu.vram'"),
    ("__import__('os')", "only min, max"),
    ("gpu.vram_gb.__class__", "unknown fact"),
    ("[x for x in gpu.precisions]", "ListComp is not allowed"),
    ("gpu.vram_gb >= ", "cannot parse"),
    ("task == None", "unsupported literal"),
    ("lambda: 1", "Lambda is not allowed"),
])
def test_rejected_expressions(text, problem):
    with pytest.raises(ConditionError, match=problem):
        Expression(text, FACTS)
