"""The RTL back end's cost model: the formulas' LUTs rescaled, term by term and per node kind, to Yosys.

The HLS back end's estimate (hls/nodes/cost.py, each kind's ``resources``) was fitted to what
Vivado made of Vivado-HLS kernels (BNN-PYNQ's published totals).  Our RTL is different logic,
and Yosys counts it differently, so for ``backend: rtl`` and ``both`` (``board_for_backend``)
the same formulas are split into named terms (``lut_terms``: a kind's own ``lut_terms(board)``
where it has one, the MVAU's control / lanes / accumulators / comparators / memory, else its
logic, memory and output stream) and the LUT estimate becomes, per node kind k,

    LUT = YOSYS_FITTED[k]["unit"] + sum over terms t of YOSYS_FITTED[k][t] * term_t

with the coefficients fitted (``fit``) to Yosys's out-of-context figures of node instances of
the zoo at many foldings (``SAMPLES``, measured by bench/rtl_fit.py, which records the tool
version, date, model and folding of each).  The fit minimises the squared relative error
(relative to max(Yosys LUTs, LUT_FLOOR), so that tiny units do not dominate), keeping every
coefficient non-negative.  A term a kind's samples never exercise keeps coefficient 1 (the
formula), and a kind without samples (its RTL is newer than the data) keeps the formula.  PINNED
terms are not fitted: their coefficient is what the logic says.
BRAM18 and DSP stay the formulas' (they count primitives; bench/rtl_fit.py fit prints how they
compare with Yosys's).

``tests/hls/test_yosys_fit.py`` refits from the stored samples and requires YOSYS_FITTED back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).parent / "data" / "yosys_samples.json"
COST_MODEL_KEY = "cost_model"  # a board mapping's entry choosing the LUT model: absent (BNN-PYNQ fit) or "yosys"
COEFFICIENTS_KEY = "yosys_coefficients"  # a board mapping's own coefficients in place of YOSYS_FITTED (a refit)
LUT_FLOOR = 256  # relative errors are taken against at least this many LUTs: below, a unit is noise in a design
ROUND = 4  # decimals kept of each coefficient
# A ROM at most dot.SHALLOW_ROM_DEPTH deep costs nothing of its own: each bit is absorbed into the LUT of
# the lane that reads it (CNV w1a1's 12-word MVAU_1: 10,435 LUT by Yosys, 19,828 costed as LUT ROM).  Too
# few sampled units have one (their largest are over bench/rtl_fit.py's size limit) to fit it: on the two
# there are, the fit gives 0, or 5.1 LUT a bit when CNV w1a1's unit is left out.
PINNED = {"MVAU": {"memory_weights_shallow": 0.0, "memory_thresholds_shallow": 0.0}}

YOSYS_FITTED: dict[str, dict[str, float]] = {
    "AddStreams": {
        "unit": 0.0,
        "logic": 0.0398,
        "stream": 1.7602
    },
    "ConvolutionInputGenerator": {
        "unit": 0.0008,
        "logic": 0.3719,
        "memory": 1.8027,
        "stream": 0.0
    },
    "ConvolutionInputGenerator1D": {
        "unit": 0.0006,
        "logic": 0.2563,
        "memory": 1.0995,
        "stream": 0.0
    },
    "DuplicateStreams": {
        "unit": 0.0,
        "logic": 0.3672,
        "stream": 0.0
    },
    "FMPadding": {
        "unit": 0.0,
        "logic": 0.1189,
        "stream": 0.6057
    },
    "GlobalAccPool": {
        "unit": 0.0025,
        "logic": 0.6395,
        "memory": 0.0246,
        "stream": 0.0344
    },
    "MVAU": {
        "unit": 0.0003,
        "accumulators": 0.105,
        "comparators": 1.8934,
        "control": 0.1427,
        "memory_thresholds": 1.9874,
        "memory_thresholds_shallow": 0.0,
        "memory_vector": 2.1052,
        "memory_weights": 3.6056,
        "memory_weights_shallow": 0.0,
        "product_lanes": 1.176,
        "stream": 0.0,
        "xnor_lanes": 0.9896
    },
    "PortAdapter": {
        "unit": 328.3844,
        "logic": 0.0,
        "stream": 6.9772
    },
    "StreamingDataWidthConverter": {
        "unit": 54.4011,
        "logic": 0.0,
        "stream": 3.9053
    },
    "StreamingMaxPool": {
        "unit": 0.0,
        "logic": 0.2326,
        "memory": 1.6761,
        "stream": 2.0764
    },
    "Thresholding": {
        "unit": 0.0002,
        "logic": 0.0569,
        "memory": 0.0,
        "stream": 0.0014
    }
}  # bench/rtl_fit.py fit prints it


def board_for_backend(board: dict, backend: str) -> dict:
    """The board mapping the build costs against: with the Yosys-fitted LUT model for an RTL build (``rtl``,
    ``both``: the design the build synthesises and measures), as it is for ``hls``."""
    return {**board, COST_MODEL_KEY: "yosys"} if backend in ("rtl", "both") else board


def uses_yosys_fit(board: dict | None) -> bool:
    return bool(board) and board.get(COST_MODEL_KEY) == "yosys"


def kind_of(op) -> str:
    return getattr(getattr(op, "onnx_node", None), "op_type", None) or type(op).__name__


def lut_terms(op, board: dict) -> dict[str, float]:
    """The formula's LUTs of ``op`` with its output stream, in named terms that sum to them (up to rounding)."""
    if hasattr(op, "lut_terms"):
        terms = dict(op.lut_terms(board))
        own = None
    else:
        from qnnflow.hls.nodes import cost

        own = op.resources(board) if hasattr(op, "onnx_node") else op.resources()
        memory = cost.memories_cost(op.memories())["LUT"] if hasattr(op, "memories") else 0
        terms = {"logic": own["LUT"] - memory, "memory": memory}
    if hasattr(op, "stream_resources"):
        terms["stream"] = op.stream_resources()["LUT"]
    return terms


def predict_lut(kind: str, terms: dict[str, float], coefficients: dict) -> float:
    """The refit LUT estimate of one unit from its terms (the formula's where ``kind`` has no coefficients)."""
    coefs = coefficients.get(kind)
    if coefs is None:
        return float(sum(terms.values()))
    return max(0.0, coefs.get("unit", 0.0) + sum(coefs.get(t, 1.0) * v for t, v in terms.items()))


def refit_resources(op, board: dict, formula: dict) -> dict:
    """``formula`` (the unit's {LUT, BRAM18, DSP} with its stream) with the LUTs of the Yosys-fitted model
    (YOSYS_FITTED, or the board mapping's own COEFFICIENTS_KEY)."""
    coefficients, kind = board.get(COEFFICIENTS_KEY) or YOSYS_FITTED, kind_of(op)
    if kind not in coefficients:  # not measured yet: the formula as it is
        return formula
    return {**formula, "LUT": int(round(predict_lut(kind, lut_terms(op, board), coefficients)))}


# ----- the samples and the fit ---------------------------------------------------------------------------------

def load_samples(path: str | Path = SAMPLES) -> list[dict]:
    return json.loads(Path(path).read_text())["samples"]


def sample_terms(samples: list[dict], board: dict) -> list[dict[str, float]]:
    """Each sample's terms, from its stored node attributes costed by today's formulas as the RTL builds the
    unit (a BIPOLAR x BIPOLAR dot product as a popcount, a narrow product in fabric)."""
    from qnnflow.hls.unit_synth import op_of

    rtl = board_for_backend(board, "rtl")
    return [lut_terms(op_of(s["spec"]), rtl) for s in samples]


def _solve_nonnegative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |a x - b| with x >= 0: least squares, dropping the most negative column until none is negative."""
    free = list(range(a.shape[1]))
    x = np.zeros(a.shape[1])
    while free:
        sol, *_ = np.linalg.lstsq(a[:, free], b, rcond=None)
        if sol.min() >= 0:
            x[:] = 0
            x[free] = sol
            return x
        free.pop(int(np.argmin(sol)))
    return x


def fit(samples: list[dict], board: dict, terms: list[dict] | None = None) -> dict[str, dict[str, float]]:
    """{kind: {"unit": c0, term: c}} fitted to the samples' Yosys LUTs (see the module docstring)."""
    terms = sample_terms(samples, board) if terms is None else terms
    out = {}
    for kind in sorted({s["spec"]["kind"] for s in samples}):
        rows = [i for i, s in enumerate(samples) if s["spec"]["kind"] == kind]
        pinned = PINNED.get(kind, {})
        names = sorted({t for i in rows for t, v in terms[i].items() if v} - set(pinned))
        y = np.array([samples[i]["yosys"]["LUT"] for i in rows], float)
        y_free = y - np.array([sum(c * terms[i].get(t, 0.0) for t, c in pinned.items()) for i in rows])
        a = np.array([[1.0] + [terms[i].get(t, 0.0) for t in names] for i in rows])
        weight = 1 / np.maximum(y, LUT_FLOOR)
        x = _solve_nonnegative(a * weight[:, None], y_free * weight)
        fitted = {name: round(float(v), ROUND) for name, v in zip(names, x[1:])}
        out[kind] = {"unit": round(float(x[0]), ROUND), **dict(sorted({**fitted, **pinned}.items()))}
    return out


def predictions(samples: list[dict], terms: list[dict], coefficients: dict) -> np.ndarray:
    return np.array([predict_lut(s["spec"]["kind"], t, coefficients) for s, t in zip(samples, terms)])


def leave_one_model_out(samples: list[dict], terms: list[dict], board: dict) -> np.ndarray:
    """Each sample's LUTs predicted by a fit on the other models' samples only."""
    out = np.zeros(len(samples))
    for model in sorted({s["model"] for s in samples}):
        held = [i for i, s in enumerate(samples) if s["model"] == model]
        rest = [i for i, s in enumerate(samples) if s["model"] != model]
        coefs = fit([samples[i] for i in rest], board, [terms[i] for i in rest])
        out[held] = predictions([samples[i] for i in held], [terms[i] for i in held], coefs)
    return out


def error_table(samples: list[dict], board: dict, coefficients: dict | None = None) -> dict:
    """Relative LUT errors of the fitted model on the samples, in sample and leave one model out:
    {"kinds": {kind: {n, in_sample, out_of_sample, formula}}, "designs": {model/folding: {...}}},
    each error the median and worst absolute relative error (per design: of the summed units)."""
    from qnnflow.hls.unit_synth import op_of

    terms = sample_terms(samples, board)
    coefficients = fit(samples, board, terms) if coefficients is None else coefficients
    y = np.array([s["yosys"]["LUT"] for s in samples], float)
    columns = {"in_sample": predictions(samples, terms, coefficients),
               "out_of_sample": leave_one_model_out(samples, terms, board),
               "formula": np.array([sum(t.values()) for t in terms])}

    kinds = {}
    for kind in sorted({s["spec"]["kind"] for s in samples}):
        idx = [i for i, s in enumerate(samples) if s["spec"]["kind"] == kind]
        floor = np.maximum(y[idx], LUT_FLOOR)
        kinds[kind] = {"n": len(idx), **{name: _stats(np.abs(pred[idx] - y[idx]) / floor)
                                         for name, pred in columns.items()}}
    primitives = {}  # BRAM18 and DSP: the formulas' (as the RTL builds the unit) against Yosys's, summed per kind
    rtl = board_for_backend(board, "rtl")
    for s in samples:
        op = op_of(s["spec"])
        formula = op.resources(rtl) if s["spec"]["kind"] == "PortAdapter" else op.resources_with_stream(rtl)
        row = primitives.setdefault(s["spec"]["kind"], {r: {"formula": 0, "yosys": 0, "equal": 0} for r in ("BRAM18", "DSP")})
        for r in row:
            row[r]["formula"] += formula[r]
            row[r]["yosys"] += s["yosys"][r]
            row[r]["equal"] += formula[r] == s["yosys"][r]
    designs = {}
    for key in sorted({(s["model"], s["folding"]) for s in samples}):
        idx = [i for i, s in enumerate(samples) if (s["model"], s["folding"]) == key]
        measured = float(y[idx].sum())
        designs[f"{key[0]} ({key[1]})"] = {"units": len(idx), "yosys": measured,
                                           **{name: float(pred[idx].sum()) for name, pred in columns.items()}}
    return {"coefficients": coefficients, "kinds": kinds, "designs": designs, "primitives": primitives}


def _stats(errors: np.ndarray) -> dict:
    return {"median": float(np.median(errors)), "worst": float(errors.max())}


def format_errors(table: dict) -> str:
    lines = ["LUT error per node kind (|estimate - Yosys| / max(Yosys, %d)): median / worst" % LUT_FLOOR,
             f"{'kind':<34} {'n':>4}  {'formula (BNN-PYNQ fit)':>22}  {'refit, in sample':>17}  {'refit, out of sample':>21}"]
    for kind, k in table["kinds"].items():
        cell = lambda e: f"{e['median']:>6.0%} / {e['worst']:>5.0%}"  # noqa: E731
        lines.append(f"{kind:<34} {k['n']:>4}  {cell(k['formula']):>22}  {cell(k['in_sample']):>17}  "
                     f"{cell(k['out_of_sample']):>21}")
    lines += ["", "LUT total per design (sum of its units out of context), Yosys vs estimate",
              f"{'design':<52} {'Yosys':>7}  {'formula':>14}  {'refit in':>14}  {'refit out':>14}"]
    for name, d in table["designs"].items():
        cell = lambda v: f"{v:>7,.0f} {v / d['yosys'] - 1:>+5.0%}"  # noqa: E731
        lines.append(f"{name:<52} {d['yosys']:>7,.0f}  {cell(d['formula']):>14}  {cell(d['in_sample']):>14}  "
                     f"{cell(d['out_of_sample']):>14}")
    lines += ["", "BRAM18 and DSP (the formulas, not refitted): summed over each kind's samples, and how many samples agree"]
    for kind, row in table["primitives"].items():
        n = table["kinds"][kind]["n"]
        lines.append(f"{kind:<34} " + "  ".join(f"{r} formula {v['formula']:>4} Yosys {v['yosys']:>4} ({v['equal']}/{n} equal)"
                                               for r, v in row.items()))
    return "\n".join(lines)
