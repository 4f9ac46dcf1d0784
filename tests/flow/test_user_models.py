"""A user's own model, in each of the three forms ``model:`` accepts, through the same flow."""

import numpy as np
import pytest

from qnnflow.flow.config import DEFAULT_STEPS, load_config
from qnnflow.base.errors import QnnflowError
from qnnflow.flow.runner import run_build
from qnnflow.models.export import Golden, export_brevitas, torch_outputs

from .conftest import assert_every_step_checked
from .helpers import tiny_net, tiny_net_inputs


def build(tmp_path, model, extra=""):
    path = tmp_path / "user.yaml"
    path.write_text(f"model: {model}\nboard: ultra96\ngolden: {{count: 3}}\n{extra}")
    return run_build(load_config(path), tmp_path / "out", progress=lambda line: None)


def test_python_factory_model(tmp_path):
    log = build(tmp_path, "tests.flow.helpers:tiny_net")
    assert_every_step_checked(log)
    golden = Golden.load(tmp_path / "out" / "golden.npz")
    assert golden.input.shape == (3, 2, 8, 8)
    assert golden.input.min() < 0  # the factory's (-1, 1) input range is used
    net, _, _ = tiny_net()
    np.testing.assert_array_equal(golden.output, torch_outputs(net, golden.input))


@pytest.fixture
def user_qonnx(tmp_path):
    net, shape, _ = tiny_net()
    path = tmp_path / "mine.onnx"
    export_brevitas(net, shape).save(str(path))
    return net, path


def test_qonnx_file_without_golden_uses_its_own_execution(tmp_path, user_qonnx):
    _, path = user_qonnx
    log = build(tmp_path, path)
    assert [s["name"] for s in log["steps"]] == DEFAULT_STEPS
    assert_every_step_checked(log)
    assert "QONNX model itself" in Golden.load(tmp_path / "out" / "golden.npz").source


def test_qonnx_file_with_golden_beside_it(tmp_path, user_qonnx):
    net, path = user_qonnx
    inputs = tiny_net_inputs(4)
    np.savez(path.with_suffix(".npz"), input=inputs, output=torch_outputs(net, inputs))
    build(tmp_path, path)
    golden = Golden.load(tmp_path / "out" / "golden.npz")
    assert golden.input.shape == (4, 2, 8, 8) and "user golden" in golden.source


def test_qonnx_file_with_wrong_golden_fails_export_verification(tmp_path, user_qonnx):
    net, path = user_qonnx
    inputs = tiny_net_inputs(2)
    np.savez(path.with_suffix(".npz"), input=inputs, output=torch_outputs(net, inputs) + 1.0)
    with pytest.raises(QnnflowError, match="step 'export': output does not match the golden output"):
        build(tmp_path, path)
