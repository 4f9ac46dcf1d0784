"""SIMD-aligned structured pruning (transforms/prune.py, the prune step)."""

import json
import math

import numpy as np
import pytest
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.flow.cli import main
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build
from qnnflow.models.export import Golden
from qnnflow.transforms.prune import block_keep, block_scores, hardware_matrix

SMALL_SIMD = [1, 4, 4, 8, 8, 8]  # Conv_0 (3 channels) with SIMD 1: its sliding window gets a PruneMask
STEPS = "[export, tidy, streamline, prune, to_hw, fold, estimate, hls_codegen, cppsim]"


# ----- scores and masks against a plain reference ------------------------------------------


def reference_scores(conv_weights, simd, p):
    """Block b: every weight of input channels b*simd .. b*simd+simd-1, straight from (OC, C, KH, KW)."""
    blocks = []
    for start in range(0, conv_weights.shape[1], simd):
        values = conv_weights[:, start:start + simd].ravel().astype(np.float64)
        blocks.append(np.linalg.norm(values, ord=p))
    return np.array(blocks)


@pytest.mark.parametrize("p", [1, 2, 3, math.inf])
@pytest.mark.parametrize("simd", [1, 2, 3, 4, 6, 12])
def test_block_scores_match_a_per_block_norm(p, simd):
    w = np.random.default_rng(simd).integers(-3, 4, size=(8, 12, 3, 3))
    matrix, channels = hardware_matrix(w, "Conv")
    assert channels == 12 and matrix.shape == (9 * 12, 8)
    np.testing.assert_allclose(block_scores(matrix, channels, simd, p), reference_scores(w, simd, p), rtol=1e-12)
    fc = w[:, :, 0, 0].T  # a MatMul's (C, OC)
    fc_matrix, fc_channels = hardware_matrix(fc, "MatMul")
    np.testing.assert_allclose(block_scores(fc_matrix, fc_channels, simd, p),
                               reference_scores(fc.T[:, :, None, None], simd, p), rtol=1e-12)


def test_hardware_matrix_rows_are_nhwc_simd_major():
    w = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)  # (OC, C, KH, KW)
    matrix, _ = hardware_matrix(w, "Conv")
    for ky in range(2):
        for kx in range(2):
            for c in range(3):
                assert list(matrix[(ky * 2 + kx) * 3 + c]) == list(w[:, c, ky, kx])


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.3, 0.5, 0.75, 0.99])
def test_block_keep_drops_the_weakest(sparsity):
    scores = np.random.default_rng(4).integers(0, 6, size=13).astype(float)  # ties on purpose
    ranked = sorted(range(13), key=lambda b: (scores[b], b))
    dropped = set(ranked[:min(int(sparsity * 13), 12)])
    assert [not k for k in block_keep(scores, sparsity)] == [b in dropped for b in range(13)]
    assert block_keep(np.ones(1), 0.9).all()


# ----- small CNV through the flow ------------------------------------------------------------


def build(tmp_path, name, model, steps=STEPS, **prune):
    path = tmp_path / f"{name}.yaml"
    prune_yaml = json.dumps(prune)
    path.write_text(f"model: tests.transforms.prune_nets:{model}\nboard: pynq-z1\nsteps: {steps}\n"
                    f"golden: {{count: 4}}\nfold: {{lut: 0.12}}\nprune: {prune_yaml}\n")
    out = tmp_path / name
    log = run_build(load_config(path), out, progress=lambda line: None)
    return out, log


def hw_nodes(out, step_file):
    model = ModelWrapper(str(out / step_file))
    return {n.name: getCustomOp(n) for n in model.graph.node if n.op_type in ("MVAU", "ConvolutionInputGenerator")}


@pytest.fixture(scope="module")
def small_builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune")
    pruned = build(tmp, "pruned", "small_cnv_w1a1", sparsity=0.5, simd=SMALL_SIMD)
    unpruned = build(tmp, "unpruned", "small_cnv_w1a1", steps="[export, tidy, streamline, prune, to_hw]")
    return pruned, unpruned


def test_pruned_small_cnv_is_bit_exact_to_cppsim(small_builds):
    (out, log), _ = small_builds
    steps = {s["name"]: s for s in log["steps"]}
    assert steps["cppsim"]["checked"].startswith("C++ simulation bit-exact")
    assert "equals the zero-weight model" in steps["prune"]["checked"]
    # The hardware graph computes the unpruned model with the pruned channels' weights zeroed
    # (zeroed here, from the streamlined graph, independently of the prune transform).
    report = json.loads((out / "report" / "prune_layers.json").read_text())
    reference = ModelWrapper(str(out / "02_streamline.onnx"))
    nodes = {n.name: n for n in reference.graph.node}
    for layer in report["pruning"]:
        node = nodes[layer["layer"]]
        w = np.array(reference.get_initializer(node.input[1]))
        kept = np.flatnonzero(np.repeat(block_keep(block_scores(*hardware_matrix(w, node.op_type), layer["simd"]),
                                                   0.5), layer["simd"]))
        axis = 1 if node.op_type == "Conv" else 0
        gone = np.setdiff1d(np.arange(w.shape[axis]), kept)
        np.put_along_axis(w, gone.reshape([-1 if a == axis else 1 for a in range(w.ndim)]), 0, axis=axis)
        reference.set_initializer(node.input[1], w)
        reference.set_tensor_datatype(node.input[1], DataType["INT2"])  # bipolar weights cannot hold 0
    golden = Golden.load(out / "golden.npz")
    expected = execute_batch(reference, golden.input)
    for step_file in ("04_to_hw.onnx", "05_fold.onnx"):
        hw = ModelWrapper(str(out / step_file))
        assert compare_outputs(hw, execute_batch(hw, golden.input), expected).ok
    assert not compare_outputs(hw, execute_batch(ModelWrapper(str(out / "02_streamline.onnx")), golden.input),
                               expected).ok  # pruning changed the function


def test_mw_shrinks_by_the_pruned_words_and_cycles_drop(small_builds):
    (out, _), (base, _) = small_builds
    report = json.loads((out / "report" / "prune_layers.json").read_text())
    before, after = hw_nodes(base, "04_to_hw.onnx"), hw_nodes(out, "04_to_hw.onnx")
    for layer in report["pruning"]:
        name = layer["mvau"]
        removed = before[name].get_nodeattr("MW") - after[name].get_nodeattr("MW")
        assert removed == layer["pruned_words"] * layer["simd"]
        narrower = after[name].get_nodeattr("MH") < before[name].get_nodeattr("MH")
        if removed or narrower:
            assert after[name].cycles() < before[name].cycles()
    windows = [n for n in after if n.startswith("ConvolutionInput")]
    assert after[windows[0]].get_nodeattr("PruneMask") and after[windows[0]].kept_channels().size == 2
    for name in windows:
        assert after[name].kept_channels().size < before[name].kept_channels().size
        assert after[name].cycles() < before[name].cycles()


def test_refolded_pruned_design_is_faster_at_the_same_budget(small_builds):
    (out, _), _ = small_builds
    table = json.loads((out / "report" / "prune_layers.json").read_text())
    assert table["after"]["estimated_fps"] > table["before"]["estimated_fps"]
    assert table["after"]["LUT"] <= 0.12 * 53200
    folding = json.loads((out / "report" / "folding.json").read_text())
    assert folding["estimated_throughput_fps"] == table["after"]["estimated_fps"]


def test_sparsity_zero_leaves_the_model_unchanged(small_builds):
    _, (base, log) = small_builds
    assert (base / "03_prune.onnx").read_bytes() == (base / "02_streamline.onnx").read_bytes()
    assert "nothing pruned" in " ".join(next(s for s in log["steps"] if s["name"] == "prune")["notes"])


# ----- bad input: one line, exit 2, naming the field and the layer ------------------------------


def run_cli(tmp_path, capsys, model, *sets):
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: tests.transforms.prune_nets:{model}\nboard: pynq-z1\n"
                    "steps: [export, tidy, streamline, prune, to_hw]\ngolden: {count: 2}\n")
    code = main(["build", str(path), "--out", str(tmp_path / "out"), *[a for s in sets for a in ("--set", s)]])
    return code, capsys.readouterr().err.strip()


def test_simd_not_dividing_a_layers_channels(tmp_path, capsys):
    code, err = run_cli(tmp_path, capsys, "small_cnv_w1a1", "prune.sparsity=0.5", "prune.simd=[1,5,4,8,8,8]")
    assert code == 2 and len(err.splitlines()) == 1
    assert "prune.simd[1]: SIMD=5 does not divide the 16 input channels of layer 'Conv_1' (MVAU_1)" in err


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1"])
def test_sparsity_outside_zero_one(tmp_path, capsys, value):
    code, err = run_cli(tmp_path, capsys, "small_cnv_w1a1", f"prune.sparsity={value}")
    assert code == 2 and "prune.sparsity (from --set): must be in [0, 1)" in err and len(err.splitlines()) == 1


def test_no_prunable_layer(tmp_path, capsys):
    code, err = run_cli(tmp_path, capsys, "input_layer_only", "prune.sparsity=0.5", "prune.simd=[4]")
    assert code == 2 and len(err.splitlines()) == 1
    assert "no prunable layer" in err and "'MatMul_0'" in err and "network's input" in err


# ----- the zoo's CNVs (slow: export, fold twice and the C++ simulation of the whole network) ----


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnv_w1a1", "cnv_w2a2"])
@pytest.mark.parametrize("sparsity", [0.3, 0.6])
def test_pruned_cnv_through_every_step_to_cppsim(tmp_path, model, sparsity):
    from pathlib import Path

    build_file = Path(__file__).resolve().parents[2] / "builds" / f"{model}.yaml"
    cfg = load_config(build_file, [f"prune.sparsity={sparsity}", "golden.count=2"])
    log = run_build(cfg, tmp_path, to_step="cppsim", progress=lambda line: None)
    steps = {s["name"]: s for s in log["steps"]}
    assert all(s["verified"] for n, s in steps.items() if n not in ("estimate", "hls_codegen"))
    assert steps["cppsim"]["checked"].startswith("C++ simulation bit-exact")
    report = json.loads((tmp_path / "report" / "prune_layers.json").read_text())
    assert sum(layer["pruned_words"] for layer in report["pruning"]) > 0
    before, after = report["before"], report["after"]
    # folding spends the budget on speed: faster, or as fast (at a node's ceiling) with fewer LUTs
    assert after["estimated_fps"] > before["estimated_fps"] or (
        after["estimated_fps"] == before["estimated_fps"] and after["LUT"] < before["LUT"])


def test_cli_prunes_tfc_by_magnitude(tmp_path, capsys):
    """`qnnflow build ... --set prune.sparsity=0.5` on random weights: pruned by magnitude, no training."""
    from pathlib import Path

    build_file = Path(__file__).resolve().parents[2] / "builds" / "tfc_w1a1.yaml"
    out = tmp_path / "tfc"
    assert main(["build", str(build_file), "--out", str(out), "--set", "prune.sparsity=0.5", "--set", "golden.count=2",
                 "--to", "to_hw"]) == 0
    report = json.loads((out / "report" / "prune_layers.json").read_text())
    assert report["pruning"][0]["how"] is None and "network's input" in report["pruning"][0]["reason"]
    hw = hw_nodes(out, "04_to_hw.onnx")
    for layer in report["pruning"][1:]:
        assert layer["pruned_words"] > 0
        assert hw[layer["mvau"]].get_nodeattr("MW") == layer["channels"] - layer["pruned_words"] * layer["simd"]


# ----- the trade-off table and the fine-tuning schedule ------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_against_a_sweep(seed):
    from qnnflow.transforms.prune_report import pareto_front

    rng = np.random.default_rng(seed)
    fps, lut = rng.permutation(40)[:12] * 100.0, rng.permutation(40)[:12] * 1000  # distinct values
    points = [{"estimated_fps": f, "LUT": l, "BRAM18": 0, "accuracy": None} for f, l in zip(fps, lut)]
    # Sweep by rising LUT: a point is on the front when it is faster than every cheaper point.
    best, expected = -1.0, {}
    for i in sorted(range(12), key=lambda i: lut[i]):
        expected[i] = fps[i] > best
        best = max(best, fps[i])
    assert pareto_front(points) == [expected[i] for i in range(12)]


def test_fine_tuning_schedule_smoke_on_tfc(tmp_path):
    """Two steps of 0.15 with one epoch of fine-tuning each on 200 MNIST images, through to_hw."""
    from pathlib import Path

    build_file = Path(__file__).resolve().parents[2] / "builds" / "tfc_w1a1.yaml"
    cfg = load_config(build_file, ["weights=trained", "golden.count=2", "prune.sparsity=0.3", "prune.simd=[1,8,8,8]",
                                   "prune.fine_tune_epochs=1", "prune.train_limit=200", "prune.test_limit=100"])
    log = run_build(cfg, tmp_path, to_step="to_hw", progress=lambda line: None)
    steps = {s["name"]: s for s in log["steps"]}
    assert steps["to_hw"]["verified"] and "golden I/O" in steps["to_hw"]["checked"]
    table = json.loads((tmp_path / "report" / "prune.json").read_text())
    assert [p["sparsity"] for p in table["points"]] == [0.0, 0.15, 0.3]
    assert all(0 <= p["accuracy"] <= 1 for p in table["points"])
    assert table["points"][2]["LUT"] < table["points"][0]["LUT"]
    assert (tmp_path / "report" / "prune.png").read_bytes()[:4] == b"\x89PNG"
    # the fine-tuned weights the build went on with load into the zoo model
    import torch

    from qnnflow.models.zoo import build_model

    build_model("tfc_w1a1").load_state_dict(torch.load(tmp_path / "prune" / "fine_tuned.pt", weights_only=False))
    report = json.loads((tmp_path / "report" / "prune_layers.json").read_text())
    hw = hw_nodes(tmp_path, "04_to_hw.onnx")
    for layer in report["pruning"][1:]:
        assert hw[layer["mvau"]].get_nodeattr("MW") == layer["channels"] - layer["pruned_words"] * layer["simd"]



def test_schedule_stops_before_a_step_that_loses_too_much_accuracy(tmp_path):
    """A 0.6 step of TFC (one epoch on 200 images) loses accuracy; with max_accuracy_drop 0 it is not kept."""
    from pathlib import Path

    build_file = Path(__file__).resolve().parents[2] / "builds" / "tfc_w1a1.yaml"
    cfg = load_config(build_file, ["weights=trained", "golden.count=2", "prune.sparsity=0.6", "prune.step=0.6",
                                   "prune.simd=[1,8,8,8]", "prune.fine_tune_epochs=1", "prune.train_limit=200",
                                   "prune.test_limit=200", "prune.max_accuracy_drop=0"])
    log = run_build(cfg, tmp_path, to_step="prune", progress=lambda line: None)
    notes = " ".join(next(s for s in log["steps"] if s["name"] == "prune")["notes"])
    table = json.loads((tmp_path / "report" / "prune.json").read_text())
    unpruned, step = table["points"]
    assert step["sparsity"] == 0.6 and not step["kept"] and step["accuracy"] < unpruned["accuracy"]
    assert "stopped before sparsity 0.6" in notes
    report = json.loads((tmp_path / "report" / "prune_layers.json").read_text())
    assert report["sparsity"] == 0 and all(layer["pruned_words"] == 0 for layer in report["pruning"])
