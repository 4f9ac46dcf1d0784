"""The cross-check: a qnnflow-trained LFC through build -> export-bnn-pynq -> import picks, image for
image, the class the PyTorch model picks."""

from pathlib import Path

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch, execute_context
from qnnflow.flow.cli import main as cli
from qnnflow.models import bnn_pynq, data
from qnnflow.models.zoo import build_model

REPO = Path(__file__).resolve().parents[2]
MODEL = "lfc_w1a1_in1"  # LFC-w1a1 with BNN-PYNQ's 1-bit input (pixel >= 128)
needs_mnist = pytest.mark.skipif(not (data._shared_data_dir() / "mnist").is_dir(), reason="no shared MNIST data")


def _hw_graph(tmp_path, weights, model=MODEL):
    """`qnnflow build builds/<model>.yaml --to to_hw` with ``weights``; the path of its hw-stage graph."""
    out = tmp_path / "out"
    assert cli(["build", str(REPO / "builds" / f"{model}.yaml"), "--set", f"weights={weights}",
                "--set", "golden.count=4", "--to", "to_hw", "--out", str(out)]) == 0
    (graph,) = out.glob("*_to_hw.onnx")
    return graph


def _exported(tmp_path, hw_graph):
    """`qnnflow export-bnn-pynq` of the graph, re-imported."""
    params = tmp_path / "params" / "lfcW1A1"
    assert cli(["export-bnn-pynq", str(hw_graph), "--network", "lfcW1A1", "--out", str(params)]) == 0
    return params, bnn_pynq.import_bnn_pynq(params)


def _torch_classes(weights, inputs):
    with torch.no_grad():
        return build_model(MODEL, weights)(torch.from_numpy(inputs)).argmax(1).numpy()


@pytest.fixture(scope="module")
def trained_hw(tmp_path_factory):
    """The hw-stage graph of the shipped lfc_w1a1_in1 checkpoint (weights: trained)."""
    return _hw_graph(tmp_path_factory.mktemp("trained"), "trained")


@pytest.fixture(scope="module")
def trained_export(trained_hw):
    return _exported(trained_hw.parent.parent, trained_hw)


def _cross_check(imported, limit):
    """(images, accuracy): the imported graph must pick PyTorch's class on each of the first ``limit`` test images."""
    inputs, labels = bnn_pynq.test_set(bnn_pynq.network("lfcW1A1"), limit)
    want = _torch_classes("trained", inputs)
    got = bnn_pynq.predict(imported, inputs)
    differ = np.nonzero(got != want)[0]
    assert differ.size == 0, f"{differ.size} of {len(want)} images differ, the first: test image {differ[0]}"
    return len(got), float((got == labels).mean())


@needs_mnist
def test_trained_lfc_exported_and_reimported_classifies_as_pytorch(trained_export):
    params, imported = trained_export
    assert not list(params.glob("3-*-thres.bin")) and len(list(params.glob("3-*-weights.bin"))) == 16
    assert bnn_pynq.network_of(imported).scores
    images, accuracy = _cross_check(imported, 500)
    assert images == 500 and accuracy > 0.95  # a trained network (97.85% on all 10,000)


@pytest.mark.slow
@needs_mnist
def test_trained_lfc_round_trip_on_the_whole_test_set(trained_export):
    images, accuracy = _cross_check(trained_export[1], None)
    assert images == 10000
    print(f"{MODEL} exported as lfcW1A1 and re-imported: the class of PyTorch on all {images:,} test images, "
          f"accuracy {100 * accuracy:.2f}%")


@pytest.fixture
def hw_model(trained_hw):
    return ModelWrapper(str(trained_hw))


def _tail_mul(model):
    """The host Mul that scales the last MVAU's accumulators."""
    last = [n for n in model.graph.node if n.op_type == "MVAU"][-1]
    return next(n for n in model.graph.node if n.op_type == "Mul" and n.input[0] == last.output[0])


def _saved(model, path):
    model.save(str(path))
    return path


INPUTS = np.random.default_rng(5).random((128, 1, 28, 28), dtype=np.float32)


def test_the_scores_are_the_models_popcounts(hw_model, tmp_path):
    last = [n for n in hw_model.graph.node if n.op_type == "MVAU"][-1]
    popcounts = np.stack([execute_context(hw_model, x)[last.output[0]] for x in INPUTS[:4]])
    _, imported = _exported(tmp_path, _saved(hw_model, tmp_path / "hw.onnx"))
    scores = execute_batch(imported, INPUTS[:4])
    np.testing.assert_array_equal(scores[:, :10], popcounts.reshape(4, 10))
    np.testing.assert_array_equal(bnn_pynq.predict(imported, INPUTS), _torch_classes("trained", INPUTS))


def test_a_negative_scale_on_all_classes_keeps_the_class(hw_model, tmp_path):
    model = hw_model  # a fresh copy of the trained graph, its host scale negated below
    mul = _tail_mul(model)
    model.set_initializer(mul.input[1], -model.get_initializer(mul.input[1]))
    _, imported = _exported(tmp_path, _saved(model, tmp_path / "hw.onnx"))
    want = execute_batch(model, INPUTS).argmax(1)
    np.testing.assert_array_equal(bnn_pynq.predict(imported, INPUTS), want)


def test_a_per_class_scale_is_refused_naming_the_node(hw_model, tmp_path, capsys):
    model = hw_model  # a fresh copy of the trained graph, its host scale made per class below
    mul = _tail_mul(model)
    model.set_initializer(mul.input[1], np.linspace(0.5, 1.5, 10, dtype=np.float32))
    path = _saved(model, tmp_path / "hw.onnx")
    capsys.readouterr()
    out = tmp_path / "p" / "lfcW1A1"
    assert cli(["export-bnn-pynq", str(path), "--network", "lfcW1A1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{mul.name}' (Mul) after the last layer 'MVAU_3' treats the classes differently" in err[0]
    assert not out.exists()


def test_an_8_bit_input_lfc_is_refused_at_layer_0(tmp_path, capsys):
    path = _hw_graph(tmp_path, "random", model="lfc_w1a1")
    capsys.readouterr()
    assert cli(["export-bnn-pynq", str(path), "--network", "lfcW1A1", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "layer 0 ('MVAU_0'): computes INT8 x BIPOLAR" in err and "binary input quantizer" in err


def test_tfc_is_refused_there_is_no_overlay():
    with pytest.raises(QnnflowError, match="BNN-PYNQ has no TFC overlay"):
        bnn_pynq.network("tfcW1A1")


def test_bit_width_overrides_keep_the_1_bit_input():
    from qnnflow.models.train_config import model_with_bits
    from qnnflow.models.zoo import ZOO

    assert model_with_bits(MODEL, "lfc", 1, None, ZOO) == MODEL
    with pytest.raises(QnnflowError, match="the zoo has no 'lfc_w1a2_in1'"):
        model_with_bits(MODEL, "lfc", None, 2, ZOO)
