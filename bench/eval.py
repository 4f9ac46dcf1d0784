"""The 10,000-image CIFAR-10 test set through the hw stage of CNV w1a1 (target: under 60 s here).

Builds builds/cnv_w1a1.yaml up to its hardware graph (cached in out/bench-eval), then times
`qnnflow eval --stage hw` on the whole test set; the graph runs in one forked process per
core. Prints the time, the rate and the load average (the machine is shared).

Usage: python bench/eval.py [weights]   (default: random; e.g. runs/cnv_w1a1/best.pt)
"""

import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from qnnflow.flow.config import load_config  # noqa: E402
from qnnflow.flow.evaluate import evaluate, stage_graph  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main(weights="random"):
    cfg = load_config(REPO / "builds" / "cnv_w1a1.yaml", [f"weights={weights}"])
    out = REPO / "out" / "bench-eval"
    stage_graph(cfg, out, "hw", lambda line: None)  # build (or reuse) the graph outside the timing
    t0 = time.perf_counter()
    result = evaluate(cfg, out, ["hw"], progress=lambda line: None)
    seconds = time.perf_counter() - t0
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cnv_w1a1 hw stage: {result['images']} CIFAR-10 test images in {seconds:.1f} s "
          f"({result['images'] / seconds:,.0f} img/s, {os.cpu_count()} cores, load average {load}); "
          f"accuracy {100 * result['accuracy']:.2f}% (weights: {weights})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "random")
