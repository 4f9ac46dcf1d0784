"""qnnflow eval: a trained TFC on a slice of MNIST at every stage; the stages agree image for image."""

import json

import numpy as np
import pytest
import torch

from qnnflow.base.execute import execute_batch
from qnnflow.flow.cli import main
from qnnflow.flow.config import load_config
from qnnflow.flow.evaluate import STAGES, Disagreement, check_agreement, evaluate, stage_graph
from qnnflow.models.data import load_mnist, preprocess, spread_indices
from qnnflow.models.train import train
from qnnflow.models.train_config import TrainConfig

IMAGES = 64
CHOSEN = spread_indices(10000, IMAGES)  # --limit spreads its images over the test set


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A TFC trained for one short epoch, its build file (no fold: faster), and an evaluation of every stage."""
    root = tmp_path_factory.mktemp("eval")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train("tfc_w1a1", TrainConfig(epochs=1, batch_size=50), root / "run", train_limit=2000, test_limit=200,
              progress=False, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    build = root / "tfc.yaml"
    build.write_text(f"model: tfc_w1a1\nweights: {root / 'run' / 'best.pt'}\nboard: pynq-z1\n"
                     "steps: [export, tidy, streamline, to_hw]\ngolden: {count: 2}\n")
    cfg = load_config(build)
    out = root / "out"
    result = evaluate(cfg, out, STAGES, IMAGES, progress=lambda line: None)
    return build, cfg, out, result


def test_every_stage_after_torch_predicts_the_same_class_for_every_image(setup):
    _, _, out, result = setup
    report = out / "report"
    predictions = {s: np.load(report / f"predictions_{s}.npy") for s in STAGES}
    assert all(len(p) == IMAGES for p in predictions.values())
    assert np.array_equal(predictions["streamlined"], predictions["hw"])
    assert np.array_equal(predictions["hw"], predictions["cppsim"])
    labels = load_mnist("test")[1][CHOSEN]
    assert result["accuracy"] == pytest.approx(float(np.mean(predictions["cppsim"] == labels)))
    assert result["accuracy"] > 0.3  # one short epoch on 2,000 images; chance is 0.1
    assert np.mean(predictions["torch"] == predictions["hw"]) > 0.95  # float ties may differ from PyTorch


def test_the_report_files(setup):
    _, _, out, result = setup
    report = out / "report"
    saved = json.loads((report / "accuracy.json").read_text())
    assert saved["stage"] == "cppsim" and saved["images"] == IMAGES and set(saved["stages"]) == set(STAGES)
    assert saved["accuracy"] == result["accuracy"]
    per_class = saved["per_class_accuracy"]
    labels = load_mnist("test")[1][CHOSEN]
    predictions = np.load(report / "predictions.npy")
    assert np.array_equal(predictions, np.load(report / "predictions_cppsim.npy"))
    assert per_class["3"] == pytest.approx(float(np.mean(predictions[labels == 3] == 3)))
    assert (report / "confusion_hw.png").read_bytes()[:4] == b"\x89PNG"


def test_the_command_prints_the_accuracy_last(setup, capsys):
    build, _, out, _ = setup
    assert main(["eval", str(build), "--stage", "hw", "--limit", str(IMAGES), "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    hw = json.loads((out / "report" / "accuracy.json").read_text())
    assert hw["stage"] == "hw" and last == f"accuracy (hw): {100 * hw['accuracy']:.2f}%"


def test_a_disagreement_names_the_first_image_and_node(setup):
    _, cfg, out, _ = setup
    streamlined = stage_graph(cfg, out, "streamlined", lambda line: None)
    hw = stage_graph(cfg, out, "hw", lambda line: None)
    x = preprocess(load_mnist("test")[0][CHOSEN], "mnist")
    first_mvau = [n for n in hw.graph.node if n.op_type == "MVAU"][0]
    weights = hw.get_initializer(first_mvau.input[1])
    flipped = 1 - weights if set(np.unique(weights)) <= {0, 1} else -weights  # XNOR weights are 0/1
    hw.set_initializer(first_mvau.input[1], flipped)  # a broken first layer: most classes change
    broken = np.argmax(execute_batch(hw, x), axis=-1)
    reference = np.load(out / "report" / "predictions_streamlined.npy")
    first = CHOSEN[np.flatnonzero(broken != reference)[0]]  # named by its index in the test set
    with pytest.raises(Disagreement, match=rf"first: image {first} .*first differing node: '{first_mvau.name}'"):
        check_agreement("hw", broken, {"streamlined": reference}, x, {"hw": hw, "streamlined": streamlined},
                        cfg, out, lambda line: None, total=10000)


def test_eval_of_a_model_outside_the_zoo_is_bad_input(tmp_path, capsys):
    onnx_file = tmp_path / "net.onnx"
    onnx_file.write_bytes(b"")
    build = tmp_path / "b.yaml"
    build.write_text(f"model: {onnx_file}\nboard: pynq-z1\nsteps: [export]\n")
    assert main(["eval", str(build), "--out", str(tmp_path / "o")]) == 2
    assert "eval needs a zoo model" in capsys.readouterr().err
