"""cppsim on CNV w1a1: code generation, g++ compile time, and C++ simulation throughput against the
Python execution of the same hardware region (and of the whole graph), measured in the same run.

Three foldings: the one to_hw gives (PE = SIMD = 1 everywhere, the slowest hardware and the
largest parameter headers), FINN's BNN-PYNQ folding for CNV on the Pynq-Z1 (with the width
converters it needs), and the one qnnflow's fold step chooses for the Pynq-Z1.  cppsim runs the
ap_int code Vitis HLS compiles; the native-integer fast path (``native=True``) is timed beside it.

Usage: python bench/cppsim.py [--model cnv_w1a1] [--images 32] [--unfolded-images 4]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from timing import best_of  # noqa: E402

from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402

from qnnflow.flow.boards import load_board  # noqa: E402
from qnnflow.base.execute import execute_batch  # noqa: E402
from qnnflow.hls.codegen.project import generate  # noqa: E402
from qnnflow.hls.cppsim import compile_project, execute_region, region_input, run_testbench  # noqa: E402
from qnnflow.hls.widths import insert_converters  # noqa: E402
from qnnflow.models.export import export_source  # noqa: E402
from qnnflow.models.source import parse_model_source  # noqa: E402
from qnnflow.transforms.fold import fold  # noqa: E402
from qnnflow.transforms.streamline import streamline  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402
from qnnflow.transforms.to_hw import to_hw  # noqa: E402

CNV_FOLDING = {"MVAU": [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (5, 1)],
               "ConvolutionInputGenerator": [3, 32, 32, 32, 32, 32]}


def finn_fold(model: ModelWrapper, folding: dict, board: dict) -> ModelWrapper:
    model = ModelWrapper(copy.deepcopy(model.model))
    for op_type, values in folding.items():
        for node, value in zip([n for n in model.graph.node if n.op_type == op_type], values):
            inst = getCustomOp(node)
            pe, simd = value if op_type == "MVAU" else (None, value)
            if pe is not None:
                inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
    insert_converters(model, board)  # where neighbouring widths now differ, as the fold step does
    return model


def measure(label: str, model: ModelWrapper, inputs, images: int, board: dict) -> None:
    inputs = inputs[:images]
    t0 = time.perf_counter()
    project = generate(model, board)
    codegen = time.perf_counter() - t0
    header_mb = sum(len(v) for k, v in project.files.items() if k.startswith("params/")) / 1e6
    region = project.region
    x = region_input(model, region, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        binary = compile_project(project, Path(tmp) / "bin")  # cold: a fresh cache
        again = compile_project(project, Path(tmp) / "bin")  # warm: the cached binary
        native = compile_project(project, Path(tmp) / "bin", native=True)
        got, _ = run_testbench(binary.path, project, x, Path(tmp) / "run")  # warm-up (page cache, loader)
        got_native, _ = run_testbench(native.path, project, x, Path(tmp) / "run")
        cpp = best_of(lambda: run_testbench(binary.path, project, x, Path(tmp) / "run"), repeats=2)
        cpp_native = best_of(lambda: run_testbench(native.path, project, x, Path(tmp) / "run"), repeats=2)
    want, _ = execute_region(model, region, x)
    exact = bool((want.reshape(got.shape) == got).all() and (want.reshape(got.shape) == got_native).all())
    py_region = best_of(lambda: execute_region(model, region, x))
    py_graph = best_of(lambda: execute_batch(model, inputs))
    print(f"\n{label}: {len(project.kernels)} kernels, parameter headers {header_mb:.1f} MB, "
          f"codegen {codegen:.2f} s, bit-exact on {len(x)} images: {exact}")
    print(f"  g++ -O2 compile (top + testbench in parallel): {binary.compile_seconds:6.2f} s cold, "
          f"{again.compile_seconds:.2f} s cached; native fast path {native.compile_seconds:.2f} s cold")
    rows = [("cppsim (C++ testbench, ap_int)", cpp), ("cppsim, native fast path", cpp_native),
            ("Python, hardware region", py_region),
            ("Python, whole graph (execute_batch)", py_graph)]
    print(f"  {'run':<38} {'seconds':>9} {'images/s':>10} {'time / cppsim':>14}")
    for name, seconds in rows:
        print(f"  {name:<38} {seconds:>9.3f} {len(x) / seconds:>10.1f} {seconds / cpp:>14.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnv_w1a1")
    parser.add_argument("--images", type=int, default=32, help="images for the FINN-folded run")
    parser.add_argument("--unfolded-images", type=int, default=4, help="images for the PE=SIMD=1 run")
    args = parser.parse_args()
    count = max(args.images, args.unfolded_images)
    model, golden = export_source(parse_model_source(args.model), "random", count, 0)
    model, _ = to_hw(streamline(tidy(model)))
    print(f"{args.model}: golden inputs from {golden.source}")
    board = load_board("pynq-z1")
    measure("to_hw folding (PE = SIMD = 1)", model, golden.input, args.unfolded_images, board)
    measure("FINN BNN-PYNQ folding", finn_fold(model, CNV_FOLDING, board), golden.input, args.images, board)
    measure("qnnflow fold for the Pynq-Z1 (the default build's design)", fold(model, board)[0], golden.input,
            args.images, board)


if __name__ == "__main__":
    main()
