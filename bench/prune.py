"""Pruning's trade-off table: sparsity against estimated FPS, LUT, BRAM18 (and accuracy), with its Pareto front.

CNV w2a2 (random weights) at sparsities 0 to 0.75: the hardware side, estimated by qnnflow's cost
model after folding each pruned model for the Pynq-Z1 at the default budget.  LFC w1a1 (the
shipped trained checkpoint): the same estimates plus test accuracy of the pruned model in
PyTorch (pruned by magnitude, no fine-tuning), on --images MNIST test images.  FPS ratios are
against the unpruned model of the same run.

    python bench/prune.py [--images 2000] [--sparsities 0,0.15,0.3,0.45,0.6,0.75]
"""

from __future__ import annotations

import argparse
import time

from qnnflow.flow.boards import load_board
from qnnflow.models.export import export_brevitas
from qnnflow.models.prune_masks import accuracy, add_input_masks
from qnnflow.models.train import dataset_tensors
from qnnflow.models.zoo import build_model, get_entry
from qnnflow.transforms import prune, prune_report
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy


def table(name: str, weights: str, sparsities: list[float], board: dict, images: int | None) -> dict:
    module = build_model(name, weights)
    model = streamline(tidy(export_brevitas(module, get_entry(name).input_shape)))
    unpruned = prune_report.fold_streamlined(model, board, board["clock_ns"], {})
    simd = prune_report.auto_simd(model, unpruned)
    test = dataset_tensors(get_entry(name).dataset, "test", images) if images else None
    rows = []
    for sparsity in sparsities:
        layers = prune.plan(model, sparsity, simd)
        folded = unpruned if sparsity == 0 else prune_report.fold_streamlined(
            prune.prune_layers(model, layers), board, board["clock_ns"], {})
        acc = None
        if test is not None:
            handles = add_input_masks(module, {l.index: l.kept_channels for l in layers if l.how and l.pruned_blocks})
            acc = accuracy(module, *test)
            for handle in handles:
                handle.remove()
        rows.append({"sparsity": sparsity, "accuracy": acc, **prune_report.point_estimates(folded)})
    return {"simd": simd, **prune_report.tradeoff_table(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="LFC test images for accuracy")
    parser.add_argument("--sparsities", default="0,0.15,0.3,0.45,0.6,0.75")
    args = parser.parse_args()
    sparsities = [float(s) for s in args.sparsities.split(",")]
    board = load_board("pynq-z1")
    for name, weights, images in (("cnv_w2a2", "random", None), ("lfc_w1a1", "trained", args.images)):
        t0 = time.perf_counter()
        result = table(name, weights, sparsities, board, images)
        base = result["points"][0]["estimated_fps"]
        print(f"\n{name} ({weights} weights), Pynq-Z1 at 100 MHz, default budget; SIMD blocks {result['simd']}; "
              f"FPS, LUT, BRAM18 are qnnflow estimates, not synthesis"
              + (f"; accuracy: PyTorch, pruned by magnitude without fine-tuning, {images} test images" if images else ""))
        print(prune_report.format_tradeoff(result))
        print("FPS vs unpruned: " + ", ".join(f"{p['sparsity']:g}: {p['estimated_fps'] / base:.2f}x"
                                              for p in result["points"]))
        print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
