"""Executing the hardware-level CNV w1a1 graph on 1,000 inputs (target: under 20 s on 2 cores).

Baseline in the same run: qonnx's node-by-node execute_onnx of the same graph on a few
inputs, scaled to 1,000. (FINN's Python execution of its HW-layer CNV graph was measured
at 520 ms per image on this machine, i.e. about 520 s for 1,000.)

Usage: python bench/execute.py [model] [images]
"""

import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402

from qnnflow.base.execute import _sample, compare_outputs, execute_batch  # noqa: E402
from qnnflow.models.export import export_source, torch_outputs  # noqa: E402
from qnnflow.models.source import parse_model_source  # noqa: E402
from qnnflow.models.zoo import build_model  # noqa: E402
from qnnflow.transforms.streamline import streamline  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402
from qnnflow.transforms.to_hw import to_hw  # noqa: E402


def main(name="cnv_w1a1", images=1000, baseline_images=5):
    model, golden = export_source(parse_model_source(name), "random", images, 0)
    hw, _ = to_hw(streamline(tidy(model)))
    t0 = time.perf_counter()
    scores = execute_batch(hw, golden.input)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for x in golden.input[:baseline_images]:
        execute_onnx(hw, _sample(hw, x))
    per_image = (time.perf_counter() - t0) / baseline_images
    check = compare_outputs(hw, scores, golden.output)
    labels = np.mean(scores.argmax(-1) == torch_outputs(build_model(name), golden.input).argmax(-1))
    print(f"{name}: {images} images through the hardware graph in {ours:.2f} s ({1e3 * ours / images:.1f} ms/image)")
    print(f"qonnx execute_onnx, same graph: {1e3 * per_image:.0f} ms/image -> {per_image * images:.0f} s for {images}")
    print(f"speedup {per_image * images / ours:.1f}x; matches PyTorch: {check.ok} (max |diff| {check.max_abs_diff:.3g}), labels equal: {labels:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cnv_w1a1", int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
