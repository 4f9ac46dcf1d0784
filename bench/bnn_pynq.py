"""BNN-PYNQ's shipped parameter sets imported as qnnflow graphs: test-set accuracy at the hw stage
(Python execution of the dataflow graph) and on a slice at the cppsim stage (the generated C++),
with images/s, beside the accuracy BNN-PYNQ publishes for its overlays.

Usage: python bench/bnn_pynq.py [--networks lfcW1A1,cnvW1A1] [--limit N] [--cppsim-images 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


from qnnflow.hls.cppsim import cppsim, region_input, run_testbench  # noqa: E402
from qnnflow.flow.boards import load_board  # noqa: E402
from qnnflow.hls.codegen.project import generate  # noqa: E402
from qnnflow.hls.widths import insert_converters  # noqa: E402
from qnnflow.models import bnn_pynq  # noqa: E402

# BNN-PYNQ's READMEs (MNIST; CIFAR-10 on the original test set, not the JPEG copy used here)
# (none quoted here for lfcW1A2)
PUBLISHED = {"lfcW1A1": "98.40", "cnvW1A1": "79.22", "cnvW1A2": "82.66", "cnvW2A2": "84.29"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(bnn_pynq.SHIPPED))
    parser.add_argument("--limit", type=int, default=None, help="test images at the hw stage (default: all)")
    parser.add_argument("--cppsim-images", type=int, default=100, help="test images through the generated C++")
    args = parser.parse_args()
    header = (f"{'network':<9} {'images':>6} {'hw acc %':>9} {'published':>9} {'hw img/s':>9} | "
              f"{'cppsim n':>8} {'acc %':>6} {'bit-exact':>9} {'C++ img/s':>9} {'compile s':>9} | {'import s':>8}")
    print(header, flush=True)
    for name in args.networks.split(","):
        net = bnn_pynq.network(name)
        t0 = time.perf_counter()
        model = bnn_pynq.import_bnn_pynq(bnn_pynq.shipped_dir(name))
        import_s = time.perf_counter() - t0
        inputs, labels = bnn_pynq.test_set(net, args.limit)
        t0 = time.perf_counter()
        predicted = bnn_pynq.predict(model, inputs)
        hw_s = time.perf_counter() - t0
        hw_acc = 100 * float((predicted == labels).mean())
        n = min(args.cppsim_images, len(inputs))
        with tempfile.TemporaryDirectory() as tmp:
            board = load_board("pynq-z1")
            insert_converters(model, board)
            project = generate(model, board)
            result = cppsim(model, inputs[:n], board, Path(tmp) / "bin", project=project)
            x = region_input(model, project.region, inputs[:n])
            outputs, cpp_s = run_testbench(Path(result.binary), project, x, Path(tmp) / "run")
        cpp_pred = bnn_pynq.classify(outputs.reshape(n, -1), net)
        cpp_acc = 100 * float((cpp_pred == labels[:n]).mean())
        exact = result.bit_exact and bool((cpp_pred == predicted[:n]).all())
        print(f"{name:<9} {len(labels):>6} {hw_acc:>9.2f} {PUBLISHED.get(name, '-'):>9} {len(labels) / hw_s:>9.0f} | "
              f"{n:>8} {cpp_acc:>6.2f} {str(exact):>9} {n / cpp_s:>9.0f} {result.compile_seconds:>9.1f} | "
              f"{import_s:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
