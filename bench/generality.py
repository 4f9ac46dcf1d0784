"""Generality: small networks of the kinds users bring, each from Brevitas to C++ simulation.

Every pattern of tests/transforms/test_generality_patterns.py, the fixed examples of the random
network test (a 1-D stack with a global average pool; batch-norm after the activation and
per-channel power-of-two scales; one residual, concat, depthwise, average-pool and upsample block
each), and the zoo's tfc-size models, each through export, tidy,
streamline, to_hw (checked bit-exact against the exported graph, as the tests check it), fold
for the Pynq-Z1 and cppsim (g++ compile and run of the ap_int code, bit-exact against Python).
Prints a pass table with the seconds of every step; a failing step's one-line error ends its row.

Usage: python bench/generality.py [--images 8] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the networks are the tests' own

from qnnflow.base.execute import compare_outputs, execute_batch  # noqa: E402
from qnnflow.flow.boards import load_board  # noqa: E402
from qnnflow.hls.cppsim import cppsim  # noqa: E402
from qnnflow.models.export import export_brevitas, seeded_inputs  # noqa: E402
from qnnflow.models.zoo import ZOO, build_model  # noqa: E402
from qnnflow.transforms.fold import fold  # noqa: E402
from qnnflow.transforms.streamline import streamline  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402
from qnnflow.transforms.to_hw import to_hw  # noqa: E402
from tests.transforms.nets import PlannedNet  # noqa: E402
from tests.transforms.test_generality import EXAMPLES, KIND_EXAMPLES, _randomized  # noqa: E402
from tests.transforms.test_generality_patterns import PATTERNS  # noqa: E402

STEPS = ("export", "tidy", "streamline", "to_hw", "fold", "cppsim")


def networks():
    """name -> a function returning (torch module in eval mode, input shape, input range)."""
    def pattern(f):
        net, shape = f()
        return _randomized(net).eval(), shape, (-1.0, 1.0)

    found = {name: (lambda f=f: pattern(f)) for name, f in PATTERNS.items()}
    for i, plan in enumerate(EXAMPLES):
        found[f"random_example_{i}"] = lambda p=plan: (PlannedNet(p).eval(), p["input"], (-1.0, 1.0))
    for kind, plan in KIND_EXAMPLES.items():
        found[f"random_{kind}"] = lambda p=plan: (PlannedNet(p).eval(), p["input"], (-1.0, 1.0))
    for name, entry in ZOO.items():
        if "tfc" in name:  # the tfc-size zoo models (and tfc-size variants of larger ones)
            found[name] = lambda n=name, e=entry: (build_model(n), (1, *e.input_shape), (0.0, 1.0))
    return found


def run(make, images: int, board: dict, cache: Path) -> tuple[dict, str]:
    """Seconds per step, and 'pass' or the failing step's error."""
    times: dict[str, float] = {}
    net, shape, span = make()
    inputs = seeded_inputs(shape, images, 0, span)
    model = reference = None

    def timed(step, fn):
        t0 = time.perf_counter()
        out = fn()
        times[step] = time.perf_counter() - t0
        return out

    try:
        model = timed("export", lambda: export_brevitas(net, shape))
        model = reference = timed("tidy", lambda: tidy(model))
        model = timed("streamline", lambda: streamline(reference))
        model, _ = timed("to_hw", lambda: to_hw(model))
        want = execute_batch(reference, inputs)
        check = compare_outputs(model, execute_batch(model, inputs), want)
        if not check.ok:
            return times, f"to_hw not exact (max |diff| {check.max_abs_diff})"
        model, _ = timed("fold", lambda: fold(model, board))
        result = timed("cppsim", lambda: cppsim(model, inputs, board, cache, precompiled_header=True))
        return times, "pass" if result.bit_exact else f"cppsim mismatch: {result.mismatch}"
    except Exception as err:  # noqa: BLE001 - the table reports any failure in one line
        return times, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--only", nargs="*", help="network names (default: all)")
    args = parser.parse_args()
    board = load_board("pynq-z1")
    found = networks()
    unknown = sorted(set(args.only or []) - set(found))
    if unknown:
        parser.exit(2, f"unknown network(s) {', '.join(unknown)}; known: {', '.join(found)}\n")
    names = args.only or list(found)
    print(f"| network | {' | '.join(STEPS)} | total s | result |")
    print(f"| --- | {' | '.join('---:' for _ in STEPS)} | ---: | --- |")
    passed = 0
    with tempfile.TemporaryDirectory(prefix="qnnflow-generality-") as cache:
        for name in names:
            times, result = run(found[name], args.images, board, Path(cache))
            cells = [f"{times[s]:.2f}" if s in times else "-" for s in STEPS]
            print(f"| {name} | {' | '.join(cells)} | {sum(times.values()):.1f} | {result} |", flush=True)
            passed += result == "pass"
    print(f"\n{passed} of {len(names)} networks pass (bit-exact through to_hw and cppsim, {args.images} images)")


if __name__ == "__main__":
    main()
