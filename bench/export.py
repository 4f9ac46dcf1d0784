"""Export + tidy time for every zoo model, against brevitas's bare export_qonnx in the same run.

Usage: python bench/export.py [model ...]     (target: cnv_w1a1 under 2 s on 2 cores)
"""

import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import torch  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402

from timing import best_of  # noqa: E402

from qnnflow.models.export import export_brevitas  # noqa: E402
from qnnflow.models.zoo import ZOO, build_model  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402



def main(names):
    print(f"{'model':<10} {'bare export s':>14} {'export+tidy s':>14} {'ratio':>6}")
    for name in names:
        module, shape = build_model(name), ZOO[name].input_shape
        with tempfile.TemporaryDirectory() as tmp:
            bare = best_of(lambda: export_qonnx(module, torch.zeros(shape), str(Path(tmp) / "m.onnx"), dynamo=False))
        ours = best_of(lambda: tidy(export_brevitas(module, shape)))
        print(f"{name:<10} {bare:>14.3f} {ours:>14.3f} {ours / bare:>6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(ZOO))
