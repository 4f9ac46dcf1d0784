"""A training run's metrics: metrics.csv, metrics.json and the learning curve learning_curve.png."""

import csv
import io
import json
import os
from pathlib import Path

from qnnflow.base.plots import png_bytes

COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s")


def _write_atomic(path: Path, data: bytes):
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_metrics(out_dir, name, cfg, history, best, world):
    out_dir = Path(out_dir)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in history)
    _write_atomic(out_dir / "metrics.csv", text.getvalue().encode())
    summary = {
        "model": name, "epochs_done": len(history), "best_epoch": best["epoch"], "best_test_acc": best["test_acc"],
        "train_seconds": round(sum(r["seconds"] for r in history), 3), "processes": world,
        "config": cfg.as_dict(), "epochs": history,
    }
    _write_atomic(out_dir / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    _write_atomic(out_dir / "learning_curve.png", learning_curve_png(name, history))


def learning_curve_png(name, history) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], label="test")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], label="train")
    ax_acc.plot(epochs, [100 * r["test_acc"] for r in history], label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    fig.suptitle(f"{name}: learning curve")
    return png_bytes(fig, dpi=80)
