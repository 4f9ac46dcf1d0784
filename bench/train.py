"""Trained zoo models through every stage: epochs, training wall time and test accuracy per stage.

For each model it reads the run in runs/<model>/ (train it first: `qnnflow train <model>`;
metrics.json gives the epochs and the summed epoch times), then runs `qnnflow eval` on its
best.pt at the torch, streamlined, hw and cppsim stages and prints one Markdown row per model.
The streamlined stage executes one image at a time through qonnx, so it runs on a spread
of the test images only (checked against the hw and cppsim predictions of those images).

Usage: python bench/train.py [model ...]   (default: tfc_w1a1 lfc_w1a1 cnv_w1a1)
"""

import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from qnnflow.flow.config import load_config  # noqa: E402
from qnnflow.flow.evaluate import evaluate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STREAMLINED_LIMIT = {"tfc_w1a1": 1000, "lfc_w1a1": 1000, "cnv_w1a1": 100}  # images: qonnx runs it image by image


def row(model):
    run = REPO / "runs" / model
    metrics = json.loads((run / "metrics.json").read_text())
    overrides = [f"weights={run / 'best.pt'}"]
    cfg = load_config(REPO / "builds" / f"{model}.yaml", overrides)
    out = REPO / "out" / f"bench-train-{model}"
    quiet = lambda line: None  # noqa: E731
    accuracy = {}
    for stage in ("torch", "hw", "cppsim"):
        accuracy[stage] = evaluate(cfg, out, [stage], progress=quiet)["accuracy"]
    limit = STREAMLINED_LIMIT.get(model)
    accuracy["streamlined"] = evaluate(cfg, out, ["streamlined"], limit, progress=quiet)["accuracy"]
    shown = {s: f"{100 * a:.2f}%" + (f" ({limit} images)" if s == "streamlined" and limit else "")
             for s, a in accuracy.items()}
    print(f"| {model} | {metrics['epochs_done']} | {metrics['train_seconds'] / 60:.0f} min | "
          f"{100 * metrics['best_test_acc']:.2f}% (epoch {metrics['best_epoch']}) | {shown['torch']} | "
          f"{shown['streamlined']} | {shown['hw']} | {shown['cppsim']} |", flush=True)


def main(models):
    print("| model | epochs | training time | best test acc. (training) | torch | streamlined | hw | cppsim |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in models:
        row(model)


if __name__ == "__main__":
    main(sys.argv[1:] or ["tfc_w1a1", "lfc_w1a1", "cnv_w1a1"])
