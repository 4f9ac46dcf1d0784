"""Classify the golden inputs with the accelerator and check the outputs against golden.npz.

    sudo -E python3 classify_golden.py                     # on the board, through pynq
    python3 classify_golden.py --testbench PATH/testbench  # anywhere: the build's C++ simulation

The outputs must match PyTorch's by the rule the build verified every step with (exactly
for integers, to 1e-5 of the outputs' scale for floats).  Exit status 0 when they do, 1 when
they do not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "driver"))

from qnnflow_driver import QnnflowDriver, TestbenchLink  # noqa: E402

from qnnflow.base.compare import compare_to_golden  # noqa: E402 (the copy in driver/lib)
from qnnflow.base.hostops import top_k_indices  # noqa: E402
from qnnflow.base.streams import IntType  # noqa: E402

INTEGER = IntType("INT64", 64, True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testbench", help="the cppsim testbench binary, instead of the board")
    parser.add_argument("--golden", default=str(HERE / "golden.npz"))
    args = parser.parse_args(argv)
    link = TestbenchLink(Path(args.testbench)) if args.testbench else None
    driver = QnnflowDriver(HERE / "driver", link=link)
    with np.load(args.golden) as golden:
        inputs, expected, labels = golden["input"], golden["output"], golden["labels"]
    outputs = driver.execute(inputs)
    integer = driver.program.config["output"]["integer"]
    result = compare_to_golden(outputs, expected, INTEGER if integer else None)
    where = "C++ simulation" if args.testbench else "board"
    print(f"{len(inputs)} golden inputs on the {where}: outputs {'match' if result.ok else 'DIFFER from'} "
          f"golden.npz (max |diff| {result.max_abs_diff:.3g}, {'exact' if result.exact else 'rel. 1e-5'})")
    if not driver.program.config["output"]["labels"] and labels.size == len(inputs):
        top1 = top_k_indices(outputs.reshape(len(inputs), -1), 1)[:, 0]
        print(f"top-1 agrees with the dataset labels on {int((top1 == labels).sum())}/{len(inputs)} images")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
