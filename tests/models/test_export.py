"""Export golden equality: every zoo model's QONNX graph computes what the PyTorch model does."""

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.models.export import export_source, seeded_inputs
from qnnflow.models.source import parse_model_source
from qnnflow.models.zoo import ZOO


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "mobilenet_w4a4" else n for n in ZOO])
def test_export_matches_pytorch(name):
    model, golden = export_source(parse_model_source(name), "random", count=2, seed=0)
    assert len(golden.input) == 2 and golden.output.shape == (2, 24 if ZOO[name].dataset == "radioml2018" else 10)
    produced = execute_batch(model, golden.input)
    result = compare_outputs(model, produced, golden.output)
    assert result.ok, f"{name}: max |diff| {result.max_abs_diff}"
    np.testing.assert_array_equal(produced.argmax(-1), golden.output.argmax(-1))
    quantizers = {n.op_type for n in model.graph.node} & {"Quant", "BipolarQuant"}
    bit_widths = {ZOO[name].weight_bits, ZOO[name].act_bits, ZOO[name].in_bits}
    assert quantizers == {"BipolarQuant" if bits == 1 else "Quant" for bits in bit_widths}


def test_seeded_inputs_integer_range_and_determinism():
    a = seeded_inputs((1, 3, 4, 4), 5, seed=1, value_range=(DataType["INT4"].min(), DataType["INT4"].max()), integer=True)
    assert a.min() >= -8 and a.max() <= 7 and np.array_equal(a, np.round(a))
    assert np.array_equal(a, seeded_inputs((1, 3, 4, 4), 5, seed=1, value_range=(-8, 7), integer=True))
