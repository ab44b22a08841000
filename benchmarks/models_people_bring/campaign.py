"""The models people bring (issue 27), run as a user runs them: inspect, recommend (infer and
train on a simulated A100), verify at the default budget quiet and with one CPU-bound process
beside it, and bench; each command's exit code, wall time and output as JSON lines.

    python benchmarks/models_people_bring/campaign.py VENV OUT.jsonl [MODELS] [COMMANDS]
    python benchmarks/models_people_bring/summarize.py OUT.jsonl

VENV is an environment with autotune installed and timm, transformers, ultralytics and
onnxruntime beside it (`make published-models` makes build/models-venv with all but
onnxruntime: `build/uv/bin/uv pip install --python build/models-venv/bin/python onnxruntime`).
The two ONNX files are exported first (`--export`). No weights are downloaded.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = Path(sys.argv[1])
PY = str(VENV / "bin" / "python")
AUTOTUNE = str(VENV / "bin" / "autotune")
OUT = Path(sys.argv[2])
ONLY = set(sys.argv[3].split(",")) if len(sys.argv) > 3 and sys.argv[3] else None
WHICH = (
    set(sys.argv[4].split(","))
    if len(sys.argv) > 4
    else {"inspect", "recommend", "verify", "verify-loaded", "bench"}
)

MODELS = {  # name: (model, input options)
    "efficientnet_b0": ("models:efficientnet_b0", []),
    "convnext_tiny": ("models:convnext_tiny", []),
    "vit_small": ("models:vit_small", []),
    "yolo11n": ("models:yolo11n", ["--input-shape", "3,640,640"]),
    "yolov8n": ("models:yolov8n", ["--input-shape", "3,640,640"]),
    "gpt2": ("models:gpt2", []),
    "distilbert": ("models:distilbert", []),
    "whisper_tiny": ("models:whisper_tiny", []),
    "clip": ("models:clip", []),
    "hf_vit": ("models:hf_vit", []),
    "fasterrcnn": ("models:fasterrcnn", ["--input-shape", "3,320,320"]),
    "yolov8n_onnx_b1": (str(HERE / "yolov8n_b1.onnx"), []),
    "efficientnet_b0_onnx": (str(HERE / "efficientnet_b0_dyn.onnx"), []),
    "ssdlite": ("models:ssdlite", ["--input-shape", "3,320,320"]),
    "swin_tiny": ("models:swin_tiny", []),
}


EXPORT = """
import torch, models
y = models.yolov8n().eval()  # the default export: batch 1 fixed
torch.onnx.export(y, (torch.randn(1, 3, 640, 640),), "yolov8n_b1.onnx", dynamo=False, opset_version=17)
e = models.efficientnet_b0().eval()
torch.onnx.export(e, (torch.randn(1, 3, 224, 224),), "efficientnet_b0_dyn.onnx", dynamo=False,
                  opset_version=17,
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
"""


# The models' module beside this file, after whatever PYTHONPATH the caller gave (a source tree
# to run instead of the installed one, say).
PYTHONPATH = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)]))


def run(name, kind, argv, loaded=False):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    busy = subprocess.Popen([PY, "-c", "while True: pass"]) if loaded else None
    started = time.monotonic()
    try:
        done = subprocess.run(
            [AUTOTUNE, *argv], env=env, cwd=HERE, capture_output=True, text=True, timeout=900
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = "timeout", "", str(e)
    wall = time.monotonic() - started
    if busy:
        busy.kill()
    record = {
        "model": name,
        "kind": kind,
        "argv": ["autotune", *argv],
        "exit": code,
        "wall_s": round(wall, 1),
        "loaded": loaded,
        "stdout": out,  # whole: verify's JSON and the tables run to tens of kilobytes
        "stderr": err,
    }
    with OUT.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(name, kind, code, f"{wall:.1f}s", flush=True)


if "--export" in sys.argv:
    subprocess.run([PY, "-c", EXPORT], cwd=HERE, env=dict(os.environ, PYTHONPATH=PYTHONPATH), check=True)
    sys.exit(0)

for name, (model, extra) in MODELS.items():
    if ONLY and name not in ONLY:
        continue
    onnx = model.endswith(".onnx")
    if "inspect" in WHICH:
        run(name, "inspect", ["inspect", model, *extra, "--gpu", "A100"])
    if "recommend" in WHICH:
        run(name, "recommend", ["recommend", "--model", model, *extra, "--gpu", "A100", "--task", "infer"])
        if not onnx:
            run(
                name,
                "recommend-train",
                ["recommend", "--model", model, *extra, "--gpu", "A100", "--task", "train"],
            )
    if "verify" in WHICH:
        run(name, "verify", ["verify", "--model", model, *extra, "--json"])
    if "verify-loaded" in WHICH:
        run(name, "verify-loaded", ["verify", "--model", model, *extra, "--json"], loaded=True)
    if "bench" in WHICH:
        task = ["--task", "infer"] if onnx else ["--task", "train"]
        run(
            name,
            "bench",
            [
                "bench",
                "--model",
                model,
                *extra,
                *task,
                "--sweep",
                "batch=1" if name.endswith("_b1") else "batch=1,2,4",  # a fixed-batch export runs at 1
                "--plot",
                str(OUT.with_name(f"bench-{name}.png")),
            ],
        )
