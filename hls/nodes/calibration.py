"""The cost model against published post-synthesis figures of BNN-PYNQ's Pynq-Z1 overlays.

The caller brings our hardware graphs of the networks (after ``to_hw``; bench/fold.py and the
tests build them from the zoo); this module folds them as BNN-PYNQ did, costs them and fits.

BNN-PYNQ (Xilinx, BSD-3) publishes the resource use of its overlays at known foldings
(per-layer PE/SIMD in ``shared/bnn-pynq-format.md``).  ``calibration_rows`` applies those
foldings to our hardware graphs of the same networks and sets our estimate beside each
published figure; ``hls/nodes/cost.py`` documents the coefficients fitted on these rows.

Mapping BNN-PYNQ's design onto ours:
- MVAU i takes layer i's PE/SIMD; where our dimension differs (LFC's 784 inputs, not 832;
  10 classes, not 64) the nearest legal divisor is used (ties: the smaller).
- Each sliding window takes its MVAU's SIMD (nearest divisor of the channels), as
  BNN-PYNQ's ConvLayer_Batch does; max-pools work on all channels at once (PE = channels).
- lfcW1A1 binarises its input pixels, so its first layer is XNOR; our LFC reads 8-bit
  pixels, so for this comparison our MVAU_0 is costed as the XNOR layer BNN-PYNQ built.
- Weights and line buffers are in block RAM (ram_style=block): Vivado HLS maps arrays to
  BRAM unless told otherwise; cnvW2A2's top.cpp forces its layer-1 weights into LUTRAM.
- The published figures are whole-device post-synthesis totals (Vivado 2018.2 reports in
  bnn/src/network/<net>/README.md), so a shell of SHELL_LUTS (HLS m_axi movers, AXI-Lite
  control, PS interconnect; an assumption, not fitted) is added to our node total.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.values import divisors
from qnnflow.hls import estimate
from qnnflow.hls.nodes import cost
from qnnflow.hls.partition import is_hw
from qnnflow.hls.widths import insert_converters, strip_derived

SHELL_LUTS = 3000
CNV_W1 = [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (4, 1)]
# (PE, SIMD) per layer, and the published Pynq-Z1 totals (BRAM18 = 2 x the BRAM36 reported)
PUBLISHED = {
    "cnv_w1a1": {"folding": CNV_W1, "LUT": 26072, "BRAM18": 248, "overlay": "cnvW1A1"},
    "cnv_w1a2": {"folding": CNV_W1, "LUT": 40321, "BRAM18": 263, "overlay": "cnvW1A2"},
    "cnv_w2a2": {"folding": [(8, 3), (16, 16), (8, 16), (8, 16), (4, 8), (1, 8), (1, 2), (2, 2), (4, 1)],
                 "LUT": 37302, "BRAM18": 280, "overlay": "cnvW2A2", "lutram": ("MVAU_1",)},
    "lfc_w1a1": {"folding": [(32, 64), (64, 32), (32, 64), (16, 8)], "LUT": 28360, "BRAM18": 220,
                 "overlay": "lfcW1A1"},
}


def nearest_divisor(n: int, want: int) -> int:
    return min(divisors(n), key=lambda d: (abs(d - want), d))


def bnn_pynq_config(model: ModelWrapper, name: str) -> dict:
    """{node: {attr: value}} reproducing BNN-PYNQ's folding of ``name`` on our graph (FINN folding JSON)."""
    layers = PUBLISHED[name]["folding"]
    mvaus = [n for n in model.graph.node if n.op_type == "MVAU"]
    if len(mvaus) != len(layers):
        raise ValueError(f"{name}: {len(mvaus)} MVAUs, BNN-PYNQ has {len(layers)} layers")
    config, simd_next = {"Defaults": {}}, None
    for node in reversed(model.graph.node):  # backwards: a window takes its MVAU's SIMD
        op = getCustomOp(node) if is_hw(node) else None
        if node.op_type == "MVAU":
            pe, simd = layers[mvaus.index(node)]
            simd_next = simd
            style = "distributed" if node.name in PUBLISHED[name].get("lutram", ()) else "block"
            config[node.name] = {"PE": nearest_divisor(op.get_nodeattr("MH"), pe),
                                 "SIMD": nearest_divisor(op.get_nodeattr("MW"), simd), "ram_style": style}
        elif node.op_type == "ConvolutionInputGenerator":
            config[node.name] = {"SIMD": nearest_divisor(op.get_nodeattr("IFMChannels"), simd_next),
                                 "ram_style": "block"}
        elif node.op_type == "StreamingMaxPool":
            config[node.name] = {"PE": op.get_nodeattr("NumChannels")}
    return config


def as_bnn_pynq_built(model: ModelWrapper, name: str) -> ModelWrapper:
    """lfcW1A1's first layer is XNOR in BNN-PYNQ (binarised pixels); make ours so, for costing only."""
    if name.startswith("lfc_w1"):
        op = getCustomOp(next(n for n in model.graph.node if n.op_type == "MVAU"))
        for attr, value in (("inputDataType", "BINARY"), ("weightDataType", "BINARY"), ("binaryXnorMode", 1)):
            op.set_nodeattr(attr, value)
    return model


def published_estimate(model: ModelWrapper, name: str, board: dict) -> dict:
    """Our node total {LUT, BRAM18, DSP} for ``name`` folded as BNN-PYNQ folded it (converters included)."""
    model = as_bnn_pynq_built(ModelWrapper(model.model.__deepcopy__()), name)
    strip_derived(model)
    for node_name, attrs in bnn_pynq_config(model, name).items():
        if node_name != "Defaults":
            op = getCustomOp(model.get_node_from_name(node_name))
            for attr, value in attrs.items():
                op.set_nodeattr(attr, value)
    insert_converters(model, board)
    return estimate.total_resources(estimate.layer_estimates(model, board))


def calibration_rows(models: dict, board: dict) -> list[dict]:
    """[{model, overlay, resource, published, ours, ratio}] for every published figure of the given models.

    ``ours`` is our node total, plus SHELL_LUTS for LUT.
    """
    rows = []
    for name, model in models.items():
        pub = PUBLISHED[name]
        ours = published_estimate(model, name, board)
        ours["LUT"] += SHELL_LUTS
        for res in ("LUT", "BRAM18"):
            if res in pub:
                rows.append({"model": name, "overlay": pub["overlay"], "resource": res, "published": pub[res],
                             "ours": ours[res], "ratio": ours[res] / pub[res]})
    return rows


def _lut_estimates(models: dict, board: dict, values: dict) -> np.ndarray:
    """Node totals + shell of ``models`` at their published foldings, the cost model using coefficients ``values``."""
    board = {**board, "lut_coefficients": values}
    return np.array([published_estimate(models[n], n, board)["LUT"] + SHELL_LUTS for n in models], float)


def fit_error(models: dict, board: dict, values: dict) -> float:
    """Sum of squared relative errors of the LUT totals of ``models`` with coefficients ``values``."""
    published = np.array([PUBLISHED[n]["LUT"] for n in models], float)
    return float(np.sum((_lut_estimates(models, board, values) / published - 1) ** 2))


def fit_lut_coefficients(models: dict, board: dict, rounds: int = 2) -> dict:
    """cost.FITTED refitted to the published LUT totals of ``models``: least squares on the relative error.

    The estimate is affine in the coefficients up to per-node rounding, so each round
    measures that affine map around the current point (one evaluation per coefficient) and
    solves the linear least-squares problem exactly.
    """
    names = list(cost.FITTED)
    published = np.array([PUBLISHED[n]["LUT"] for n in models], float)
    steps = {"NODE_LUTS": 100.0, "POPCOUNT_LUTS_PER_BIT": 0.5}
    point = dict(cost.FITTED)
    for _ in range(rounds):
        base = _lut_estimates(models, board, point)
        slopes = np.stack([(_lut_estimates(models, board, {**point, k: point[k] + steps[k]}) - base) / steps[k]
                           for k in names], axis=1)
        # (base + slopes @ delta) / published ~ 1, in the least-squares sense
        delta, *_ = np.linalg.lstsq(slopes / published[:, None], 1 - base / published, rcond=None)
        point = {k: point[k] + float(d) for k, d in zip(names, delta)}
    return point


def leave_one_out(models: dict, board: dict) -> list[dict]:
    """[{model, overlay, published, predicted, ratio}]: each overlay's LUTs predicted by a fit on the others,
    an out-of-sample measure of the calibrated model (the in-sample rows are ``calibration_rows``)."""
    rows = []
    for name in models:
        others = {n: m for n, m in models.items() if n != name}
        predicted = _lut_estimates({name: models[name]}, board, fit_lut_coefficients(others, board))[0]
        published = PUBLISHED[name]["LUT"]
        rows.append({"model": name, "overlay": PUBLISHED[name]["overlay"], "published": published,
                     "predicted": predicted, "ratio": predicted / published})
    return rows
