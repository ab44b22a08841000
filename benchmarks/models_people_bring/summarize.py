"""A markdown table of campaign.py's JSON lines: exit code, wall time and the key figure.

    python summarize.py OUT.jsonl [MORE.jsonl ...] [--by-model]

One row per command, or with ``--by-model`` one row per model (docs/measured.md's table)."""

import json
import re
import sys
from pathlib import Path

rows = [json.loads(line) | {"file": Path(name).stem} for name in sys.argv[1:] if name.endswith(".jsonl")
        for line in open(name)]


def rows_of_table(err):
    """(samples/s, backend, config) of each ok row of the table verify or bench printed."""
    found = []
    for line in err.splitlines():
        m = re.match(
            r"\s+(\w+)\s+(CPU[^\s]*(?: EP)? \(\d+ threads?\))\s+(.+?)\s{2,}"
            r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s",
            line,
        )
        if m and (" ok" in line or "knee;" in line):
            found.append((float(m.group(7)), m.group(1), m.group(3).strip()))
    return found


def verify_choice(out):
    """What verify chose, from its JSON: the first backend of the measured recommendation,
    its best configuration and that configuration's samples/s; None without whole JSON."""
    try:
        document = json.loads(out)
    except ValueError:
        return None
    chosen = document["settings"]["backends"][0]
    for report in document["measurements"]:
        if report["backend"] == chosen and report.get("best"):
            speed = next((m["throughput_samples_s"] for m in report["measurements"]
                          if m["status"] == "ok" and m["config"] == report["best"]), None)
            return f"chose {chosen} {report['best']}" + (f" {speed:.1f}/s" if speed else "")
    return f"chose {chosen} (no measured configuration)"


def key(r):
    # Runs of before 2026-12-06 kept only the last 3,000 characters of each stream.
    out, err = r.get("stdout", r.get("stdout_tail", "")), r.get("stderr", r.get("stderr_tail", ""))
    if r["exit"] != 0:
        last = [line for line in (err or out).strip().splitlines() if line.strip()]
        return "error: " + (last[-1].strip()[:160] if last else "?")
    if r["kind"] == "inspect":
        p = re.search(r"parameters ([\d,]+)", out)
        f = re.search(r"FLOPs per sample[^:]*: ([\d.]+) G", out)
        fam = re.search(r"\n  family (\w+): (\d+)% of FLOPs in convolutions, (\d+)% in attention", out)
        kind = re.search(r"\((\w+), ([\w+]+) input\)", out)
        return (
            f"{p.group(1) if p else '?'} params, {f.group(1) if f else '?'} GFLOPs"
            + (f", {fam.group(1)} ({fam.group(2)}% conv, {fam.group(3)}% attn)" if fam else "")
            + (f", {kind.group(2)} input" if kind else "")
        )
    if r["kind"].startswith("recommend"):
        pf = re.search(r"predicted_for:\n    batch: (\d+)\n    runtime: (\w+)\n    precision: (\w+)", out)
        ps = re.search(r"\n  predicted_samples_s: ([\d.]+)", out)
        lb = re.search(r"largest_batch_that_fits: (\d+)", out)
        bb = re.search(r"batch_bound: (\w+)", out)
        s = f"largest batch {lb.group(1) if lb else '?'} ({bb.group(1) if bb else '?'})"
        if pf:
            s += (
                f"; {pf.group(3)} batch {pf.group(1)}, predicted {float(ps.group(1)):,.0f}/s on {pf.group(2)}"
            )
        return s
    if r["kind"].startswith("verify") or r["kind"] == "bench":
        found = rows_of_table(err)
        busy = "; busy CPU said" if "the CPU is busy" in err else ""
        if r["kind"] == "bench":  # the fastest ok row of each precision
            best = {}
            for speed, backend, config in found:
                precision = config.split()[0]
                if speed > best.get(precision, (0.0,))[0]:
                    best[precision] = (speed, f"{backend} {config}")
            return "; ".join(f"{label} {speed:.1f}/s" for speed, label in best.values()) + busy or "no ok row"
        fastest = max(found, default=None)
        choice = verify_choice(out) if r["kind"].startswith("verify") else None
        parts = [choice] if choice else []
        if fastest:
            parts.append(f"fastest ok row {fastest[1]} {fastest[2]} {fastest[0]:.1f}/s")
        return "; ".join(parts or ["no ok row"]) + busy
    return ""


if "--by-model" in sys.argv:  # docs/measured.md's table: one row per model, one column per command
    # Files in the order given; a later file's cell replaces an earlier one's (a rerun on newer
    # code), and the last column says which file each row's cells came from.
    columns = ["inspect", "recommend", "verify", "verify-loaded", "bench"]
    print("| model | inspect | recommend on an A100 (infer) | verify, default budget | with one busy process "
          "| bench --task train (infer for ONNX) | run |")
    print("|---|---|---|---|---|---|---|")
    cells: dict[str, dict[str, tuple[str, str]]] = {}
    for r in rows:
        cell = f"{key(r)} (exit {r['exit']}, {r['wall_s']} s)"
        cells.setdefault(r["model"], {})[r["kind"]] = (cell, r["file"])
    for model, by_kind in cells.items():
        runs = ", ".join(dict.fromkeys(by_kind[kind][1] for kind in columns if kind in by_kind))
        print(f"| {model} | " + " | ".join(by_kind[kind][0] if kind in by_kind else "" for kind in columns)
              + f" | {runs} |")
    sys.exit(0)

print("| model | command | exit | wall s | key figure |\n|---|---|---|---|---|")
for r in rows:
    cmd = " ".join(r["argv"]).replace(str(Path(__file__).resolve().parent) + "/", "")
    print(
        f"| {r['model']} | `{cmd}`{' (1 busy process beside)' if r['loaded'] else ''} | {r['exit']} "
        f"| {r['wall_s']} | {key(r)} |"
    )
