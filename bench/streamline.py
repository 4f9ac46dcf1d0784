"""streamline + to_hw time for a zoo model (target for CNV w1a1: under 3 s on 2 cores).

When a Python with FINN (finn-plus) is available, FINN's own ConvertQONNXtoFINN and
Streamline run on the same exported QONNX file in the same command, and the ratio is
printed. Point FINN_PYTHON at it (../shared/tools/finn-oracle-venv.sh builds one; its
default location /tmp/finn-oracle-venv is tried too).

Usage: python bench/streamline.py [model]
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from timing import best_of  # noqa: E402

from qnnflow.models.export import export_source  # noqa: E402
from qnnflow.models.source import parse_model_source  # noqa: E402
from qnnflow.transforms.streamline import streamline  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402
from qnnflow.transforms.to_hw import to_hw  # noqa: E402

# Runs inside FINN's interpreter: prints the seconds its conversion and Streamline take.
FINN_SCRIPT = """
import sys, time, warnings
warnings.filterwarnings("ignore")
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model
from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
from finn.transformation.streamline import Streamline
model = cleanup_model(ModelWrapper(sys.argv[1]))
t0 = time.perf_counter()
model = model.transform(ConvertQONNXtoFINN())
t1 = time.perf_counter()
model = model.transform(Streamline())
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def finn_python() -> str | None:
    """A Python with FINN: FINN_PYTHON, the oracle venv, or this one if finn imports here."""
    for candidate in (os.environ.get("FINN_PYTHON"), "/tmp/finn-oracle-venv/bin/python"):
        if candidate and Path(candidate).exists():
            return candidate
    return sys.executable if importlib.util.find_spec("finn") else None



def main(name):
    model, _ = export_source(parse_model_source(name), "random", 2, 0)
    tidied = tidy(model)
    ours_streamline = best_of(lambda: streamline(tidied))
    streamlined = streamline(tidied)
    ours_to_hw = best_of(lambda: to_hw(streamlined))
    ours = ours_streamline + ours_to_hw
    print(f"{name}: qnnflow streamline {ours_streamline:.2f} s + to_hw {ours_to_hw:.2f} s = {ours:.2f} s")
    python = finn_python()
    if python is None:
        print("FINN not found (set FINN_PYTHON); no ratio")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        model.save(str(path))
        result = subprocess.run([python, "-c", FINN_SCRIPT, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FINN run failed: {result.stderr.strip().splitlines()[-1]}")
        return
    convert, finn_streamline = (float(v) for v in result.stdout.split()[-2:])
    print(f"FINN ConvertQONNXtoFINN {convert:.2f} s + Streamline {finn_streamline:.2f} s on the same export")
    print(f"ratio FINN Streamline / qnnflow streamline+to_hw: {finn_streamline / ours:.1f}x")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cnv_w1a1")
