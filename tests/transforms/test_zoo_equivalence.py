"""Every step's graph of every zoo model computes what PyTorch computes.

Class scores match to 1e-5 relative and labels exactly; every integer activation of the
streamlined and hardware graphs equals the exported model's quantizer codes exactly.
"""

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.execute import compare_outputs, execute_batch, execute_context
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.refine_thresholds import activation_quantizers
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

MODELS = [f"{f}_{q}" for f in ("cnv", "lfc", "tfc") for q in ("w1a1", "w1a2", "w2a2")] + ["cnv_w4a4"]


def quantizer_codes(model, quant, ctx):
    return ctx[quant.output[0]] / model.get_initializer(quant.input[1])


def as_nchw(x):
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


@pytest.mark.parametrize("name", MODELS)
def test_every_step_matches_pytorch_and_integer_activations_match(name):
    exported, golden = export_source(parse_model_source(name), "random", count=2, seed=0)
    tidied = tidy(exported)
    streamlined = streamline(tidied)
    hw, partition = to_hw(streamlined)
    # the region from the first to the last hardware node holds hardware nodes only: no Flatten between
    # the convolutions and the classifier, nothing the stream would leave the accelerator for
    nodes = list(hw.graph.node)
    hw_at = [i for i, n in enumerate(nodes) if n.domain == "qnnflow.hls.nodes"]
    region = nodes[hw_at[0] : hw_at[-1] + 1]
    assert region and all(n.domain == "qnnflow.hls.nodes" for n in region), [n.op_type for n in region]
    assert [n.name for n in region] == partition.hardware
    # the float tail on the host is at most one scale and one bias
    tail = [n.op_type for n in nodes[hw_at[-1] + 1 :]]
    assert sorted(tail) in ([], ["Mul"], ["Add"], ["Add", "Mul"]), tail
    for model in (tidied, streamlined, hw):
        out = execute_batch(model, golden.input)
        assert compare_outputs(model, out, golden.output).ok
        np.testing.assert_array_equal(out.argmax(-1), golden.output.argmax(-1))

    quants = activation_quantizers(tidied)
    mts = [n for n in streamlined.graph.node if n.op_type == "MultiThreshold"]
    hw_acts = [n for n in hw.graph.node if (n.op_type == "MVAU" and len(n.input) == 3) or n.op_type == "Thresholding"]
    assert len(quants) == len(mts) == len(hw_acts)
    for x in golden.input:
        ref, mid, low = execute_context(tidied, x), execute_context(streamlined, x), execute_context(hw, x)
        for quant, mt, act in zip(quants, mts, hw_acts):
            codes = quantizer_codes(tidied, quant, ref)
            np.testing.assert_array_equal(mid[mt.output[0]], codes)
            produced = as_nchw(low[act.output[0]])
            dtype = getCustomOp(act).get_nodeattr("outputDataType")
            expected = (codes + 1) / 2 if dtype == "BINARY" else codes  # bits standing for -1/+1
            np.testing.assert_array_equal(produced, expected)


def test_transforms_are_deterministic():
    """The same export gives byte-identical graphs: rebuilt models hash the same, so caches hold."""
    exported, _ = export_source(parse_model_source("cnv_w1a2"), "random", count=1, seed=0)
    runs = [to_hw(streamline(tidy(exported)))[0].model.SerializeToString() for _ in range(2)]
    assert runs[0] == runs[1]
