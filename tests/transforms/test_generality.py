"""Streamlining and conversion are not shaped to the zoo: random small networks stay exact."""

import numpy as np
from hypothesis import HealthCheck, given, settings

from qnnflow.flow.execute import compare_outputs, execute_batch
from qnnflow.models.export import export_brevitas, seeded_inputs
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

from .nets import PlannedNet, layer_plans


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_plans())
def test_random_network_converts_to_hardware_and_stays_exact(plan):
    net = PlannedNet(plan).eval()
    exported = tidy(export_brevitas(net, plan["input"]))
    inputs = seeded_inputs(plan["input"], 3, plan["seed"], (-1.0, 1.0))
    reference = execute_batch(exported, inputs)
    streamlined = streamline(exported)
    hw, partition = to_hw(streamlined)
    assert partition.hardware
    for model in (streamlined, hw):
        out = execute_batch(model, inputs)
        result = compare_outputs(model, out, reference)
        assert result.ok, f"{plan}: max |diff| {result.max_abs_diff}"
        np.testing.assert_array_equal(out.argmax(-1), reference.argmax(-1))
