"""Whole networks through the HLS back end: cppsim must match the Python execution of the hardware region."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.hls.cppsim import cppsim
from qnnflow.hls.widths import insert_converters
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw
from tests.hls.backend.helpers import BOARD

# FINN's BNN-PYNQ foldings: (PE, SIMD) per MVAU in graph order, SIMD per sliding window
LFC_FOLDING = {"MVAU": [(32, 49), (64, 32), (32, 64), (5, 32)]}
CNV_FOLDING = {"MVAU": [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (5, 1)],
               "ConvolutionInputGenerator": [3, 32, 32, 32, 32, 32]}


@functools.lru_cache(maxsize=None)
def hw_graph(spec: str, count: int = 4, top_k: int = 0):
    """(HW graph, golden inputs) for a zoo name or model factory, built in-process (with label_select when top_k)."""
    model, golden = export_source(parse_model_source(spec), "random", count, 0)
    model = streamline(tidy(model))
    if top_k:
        from qnnflow.transforms.labels import insert_label_select

        model = insert_label_select(model, top_k)
    model, _ = to_hw(model)
    return model, golden.input


def folded(model, folding: dict):
    model = ModelWrapper(copy.deepcopy(model.model))
    for op_type, values in folding.items():
        nodes = [n for n in model.graph.node if n.op_type == op_type]
        assert len(nodes) == len(values), f"{op_type}: {len(nodes)} nodes, {len(values)} foldings"
        for node, value in zip(nodes, values):
            inst = getCustomOp(node)
            if op_type == "MVAU":
                inst.set_nodeattr("PE", value[0])
                inst.set_nodeattr("SIMD", value[1])
            else:
                inst.set_nodeattr("SIMD", value)
    insert_converters(model, BOARD)  # as the fold step does where neighbouring widths now differ
    return model


def check(spec, cache, folding=None, count=4, native=False):
    model, inputs = hw_graph(spec, count)
    if folding:
        model = folded(model, folding)
    result = cppsim(model, inputs, BOARD, cache, precompiled_header=True, native=native)
    assert result.bit_exact, f"{spec}: {result.message()}"
    assert result.images == count
    return result


@pytest.mark.parametrize("spec", ["tfc_w1a1", "tfc_w2a2"])
def test_tfc_unfolded(spec, cppsim_cache):
    check(spec, cppsim_cache)


def test_tfc_w2a2_top3_labels(cppsim_cache):
    """label_select: the accelerator ends in a LabelSelect and streams class indices."""
    model, inputs = hw_graph("tfc_w2a2", 4, top_k=3)
    assert [n.op_type for n in model.graph.node if n.domain == "qnnflow.hls.nodes"][-1] == "LabelSelect"
    result = cppsim(model, inputs, BOARD, cppsim_cache, precompiled_header=True)
    assert result.bit_exact, result.message()


def test_lfc_w1a1_finn_folding(cppsim_cache):
    check("lfc_w1a1", cppsim_cache, LFC_FOLDING)


def test_binary_conv_block_padded_and_strided(cppsim_cache):
    """8-bit input, padded stride-2 binary conv (zero padding makes its activations 2-bit), pool, classifier."""
    model, _ = hw_graph("tests.hls.backend.nets:binary_conv_block")
    kinds = [n.op_type for n in model.graph.node if n.domain == "qnnflow.hls.nodes"]
    assert kinds[:4] == ["FMPadding", "ConvolutionInputGenerator", "MVAU", "StreamingMaxPool"]
    stride = getCustomOp(next(n for n in model.graph.node if n.op_type == "ConvolutionInputGenerator"))
    assert stride.get_nodeattr("Stride") == [2, 2]
    check("tests.hls.backend.nets:binary_conv_block", cppsim_cache)


def test_multibit_conv_block(cppsim_cache):
    """tests/flow's TinyNet: 4-bit padded stride-2 conv with batch norm, 3-bit ReLU, max pool."""
    check("tests.flow.helpers:tiny_net", cppsim_cache)


@pytest.mark.slow
def test_cnv_w1a1_unfolded(cppsim_cache):
    check("cnv_w1a1", cppsim_cache, count=3)


@pytest.mark.slow
def test_cnv_w1a1_finn_folding(cppsim_cache):
    check("cnv_w1a1", cppsim_cache, CNV_FOLDING, count=8)


@pytest.mark.slow
def test_cnv_w2a2(cppsim_cache):
    check("cnv_w2a2", cppsim_cache, CNV_FOLDING, count=8)


@pytest.mark.slow
def test_cnv_w2a2_unfolded(cppsim_cache):
    check("cnv_w2a2", cppsim_cache, count=2)


@pytest.mark.slow
def test_cnv_w2a2_native(cppsim_cache):
    """The native-integer fast path of C simulation (QNNFLOW_NATIVE) on a whole CNV: the same results as the
    ap_int code Vitis HLS compiles (test_cnv_w2a2)."""
    assert check("cnv_w2a2", cppsim_cache, CNV_FOLDING, count=2, native=True).native


def test_region_input_goes_through_the_host_head(cppsim_cache):
    """The accelerator's input is the integer tensor the float head produces (quantized pixels)."""
    from qnnflow.hls.partition import hardware_region
    from qnnflow.hls.cppsim import region_input

    model, inputs = hw_graph("tfc_w1a1")
    x = region_input(model, hardware_region(model), inputs)
    assert x.shape == (len(inputs), 784)
    assert np.array_equal(x, np.rint(x)) and x.min() >= -128 and x.max() <= 127
