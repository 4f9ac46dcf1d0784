"""BNN-PYNQ interop: the shipped parameter sets imported as dataflow graphs and exported back."""

import copy
import shutil

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.flow.cli import main as cli
from qnnflow.models import bnn_pynq, data
from qnnflow.models.source import parse_model_source

SHIPPED = {name: data._shared_data_dir() / "bnn-pynq" / bnn_pynq.network(name).dataset / name
           for name in bnn_pynq.SHIPPED}
needs_params = pytest.mark.skipif(not all(p.is_dir() for p in SHIPPED.values()), reason="no shipped BNN-PYNQ files")
pytestmark = needs_params


@pytest.fixture(scope="module")
def imported():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = bnn_pynq.import_bnn_pynq(SHIPPED[name])
        return cache[name]

    return get


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "LICENSE"}


@pytest.fixture
def lfc_copy(tmp_path):
    target = tmp_path / "lfcW1A1"
    shutil.copytree(SHIPPED["lfcW1A1"], target)
    return target


# ----- round trip -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", bnn_pynq.SHIPPED)
def test_round_trip_reproduces_every_file(name, imported, tmp_path):
    out = tmp_path / name
    bnn_pynq.export_bnn_pynq(imported(name), name, out, folding="graph")
    assert _files(out) == _files(SHIPPED[name])


def test_folding_comes_from_the_files(imported):
    for name in ("lfcW1A1", "cnvW2A2"):
        got = [(getCustomOp(n).get_nodeattr("PE"), getCustomOp(n).get_nodeattr("SIMD"))
               for n in imported(name).graph.node if n.op_type == "MVAU"]
        assert got == list(bnn_pynq.OVERLAY_FOLDINGS[name])


# ----- the overlay's arithmetic, checked against an unpadded ("natural") form of the same network ----------


def _natural_lfc(model: ModelWrapper, signed_input: bool) -> ModelWrapper:
    """The same LFC without the overlay's padding: a 784-wide first layer reading the flat input, 10 class rows."""
    model = ModelWrapper(copy.deepcopy(model.model))
    pad = next(n for n in model.graph.node if n.op_type == "Pad")
    mvaus = [n for n in model.graph.node if n.op_type == "MVAU"]
    first, last = mvaus[0], mvaus[-1]
    first.input[0] = pad.input[0]
    model.graph.node.remove(pad)
    model.set_initializer(first.input[1], model.get_initializer(first.input[1])[:784])
    if signed_input:  # the 48 padding inputs read as -1 against +1 weights: acc_784 - 48 >= t
        model.set_initializer(first.input[2], model.get_initializer(first.input[2]) + 48)
    getCustomOp(first).set_nodeattr("MW", 784)
    getCustomOp(first).set_nodeattr("SIMD", 16)
    model.set_initializer(last.input[1], model.get_initializer(last.input[1])[:, :10])
    model.set_initializer(last.input[2], model.get_initializer(last.input[2])[:10])
    getCustomOp(last).set_nodeattr("MH", 10)
    getCustomOp(last).set_nodeattr("PE", 2)
    model.set_tensor_shape(last.output[0], [1, 10])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 10
    return model


@pytest.mark.parametrize("name", ["lfcW1A1", "lfcW1A2"])
def test_export_pads_an_unpadded_lfc_as_the_overlay_does(name, imported, tmp_path):
    overlay = imported(name)
    natural = _natural_lfc(overlay, signed_input=name == "lfcW1A2")
    inputs, _ = bnn_pynq.test_set(bnn_pynq.network(name), 64)
    np.testing.assert_array_equal(execute_batch(natural, inputs), execute_batch(overlay, inputs)[:, :10])
    bnn_pynq.export_bnn_pynq(natural, name, tmp_path / name)
    assert _files(tmp_path / name) == _files(SHIPPED[name])


def test_cnv_first_layer_in_natural_units_exports_an_equivalent_overlay(imported, tmp_path):
    """Weights +-1 and thresholds on sum(w * code) instead of the overlay's 1/256 units: the files
    differ at most in the parity of layer 0's thresholds, and compute the same."""
    overlay = imported("cnvW1A1")
    natural = ModelWrapper(copy.deepcopy(overlay.model))
    first = next(n for n in natural.graph.node if n.op_type == "MVAU")
    natural.set_initializer(first.input[1], natural.get_initializer(first.input[1]) / 2)
    getCustomOp(first).set_nodeattr("weightDataType", "BIPOLAR")
    t_file = natural.get_initializer(first.input[2]) - 1
    natural.set_initializer(first.input[2], np.floor(t_file / 2) + 1)  # 2 acc > T <=> acc >= floor(T/2) + 1
    inputs, _ = bnn_pynq.test_set(bnn_pynq.network("cnvW1A1"), 24)
    want = execute_batch(overlay, inputs)
    np.testing.assert_array_equal(execute_batch(natural, inputs), want)
    out = tmp_path / "cnvW1A1"
    bnn_pynq.export_bnn_pynq(natural, "cnvW1A1", out)
    got, shipped = _files(out), _files(SHIPPED["cnvW1A1"])
    assert got.keys() == shipped.keys()
    assert {n for n in got if got[n] != shipped[n]} <= {f"0-{p}-thres.bin" for p in range(16)}
    np.testing.assert_array_equal(execute_batch(bnn_pynq.import_bnn_pynq(out), inputs), want)


# ----- accuracy --------------------------------------------------------------------------------------


def _accuracy(model, name, limit):
    inputs, labels = bnn_pynq.test_set(bnn_pynq.network(name), limit)
    return float((bnn_pynq.predict(model, inputs) == labels).mean())


@pytest.mark.skipif(not (data._shared_data_dir() / "mnist").is_dir(), reason="no shared MNIST data")
def test_lfc_w1a1_accuracy_on_500_images(imported):
    assert _accuracy(imported("lfcW1A1"), "lfcW1A1", 500) >= 0.98  # BNN-PYNQ: 98.4% on all 10,000


@pytest.mark.skipif(not (data._shared_data_dir() / "cifar10").is_dir(), reason="no shared CIFAR-10 data")
def test_cnv_w1a1_accuracy_on_500_images(imported):
    assert _accuracy(imported("cnvW1A1"), "cnvW1A1", 500) >= 0.70  # BNN-PYNQ: 79.22% on the original images


@pytest.mark.slow
@pytest.mark.parametrize("name,floor", [("lfcW1A1", 0.984), ("lfcW1A2", 0.98), ("cnvW1A1", 0.73),
                                        ("cnvW1A2", 0.74), ("cnvW2A2", 0.76)])
def test_full_test_set_accuracy(name, floor, imported):
    assert _accuracy(imported(name), name, None) >= floor


def test_classify_applies_the_hosts_rules():
    lfc, cnv = bnn_pynq.network("lfcW1A1"), bnn_pynq.network("cnvW1A2")
    bits = np.zeros((3, 64))
    bits[0, [2, 7]] = 1  # highest set class bit
    bits[1, 40] = 1  # a padded row's bit is not a class
    bits[2, [3, 9]] = 1
    assert bnn_pynq.classify(bits, lfc).tolist() == [7, 0, 9]
    scores = np.zeros((3, 64))
    scores[0, [1, 4, 7]] = -3, 5, 5  # the first of equal maxima
    scores[1, 20] = 99  # a padded row's score is not a class
    scores[1, [2, 6]] = -1
    scores[2, [0, 3, 5]] = -9, -2, -4  # no positive score: the host keeps class 0
    assert bnn_pynq.classify(scores, cnv).tolist() == [4, 0, 0]


# ----- C++ simulation ----------------------------------------------------------------------------------


def simulated(model, inputs, cache):
    """cppsim on the Pynq-Z1 of an imported graph, with the width converters its folding needs."""
    from qnnflow.flow.boards import load_board
    from qnnflow.hls.cppsim import cppsim
    from qnnflow.hls.widths import insert_converters

    board = load_board("pynq-z1")
    model = ModelWrapper(copy.deepcopy(model.model))  # the imported graphs are shared by the module's tests
    insert_converters(model, board)
    return cppsim(model, inputs, board, cache)


def test_cppsim_is_bit_exact_on_an_imported_graph(imported, tmp_path):
    inputs, _ = bnn_pynq.test_set(bnn_pynq.network("lfcW1A1"), 4)
    result = simulated(imported("lfcW1A1"), inputs, tmp_path / "bin")
    assert result.bit_exact and result.images == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnvW1A1", "cnvW2A2"])
def test_cppsim_is_bit_exact_on_an_imported_cnv(name, imported, tmp_path):
    inputs, _ = bnn_pynq.test_set(bnn_pynq.network(name), 3)
    assert simulated(imported(name), inputs, tmp_path / "bin").bit_exact


# ----- bad input ---------------------------------------------------------------------------------------


def test_truncated_file_is_named(lfc_copy):
    path = lfc_copy / "2-5-weights.bin"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(QnnflowError, match=r"2-5-weights\.bin is \d+ bytes.*truncated"):
        bnn_pynq.import_bnn_pynq(lfc_copy)
    path.write_bytes(path.read_bytes()[:-5])  # whole words missing
    with pytest.raises(QnnflowError, match=r"2-5-weights\.bin holds 511 words but 2-0-weights\.bin holds 512"):
        bnn_pynq.import_bnn_pynq(lfc_copy)


def test_truncated_thresholds_are_named(lfc_copy):
    path = lfc_copy / "0-3-thres.bin"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(QnnflowError, match=r"0-3-thres\.bin holds 31 thresholds, expected 32"):
        bnn_pynq.import_bnn_pynq(lfc_copy)


def test_wrong_layer_count(lfc_copy):
    shutil.copy(lfc_copy / "3-0-weights.bin", lfc_copy / "4-0-weights.bin")
    with pytest.raises(QnnflowError, match=r"files of layer 4 .*lfcW1A1 has 4 layers"):
        bnn_pynq.import_bnn_pynq(lfc_copy)
    (lfc_copy / "4-0-weights.bin").unlink()
    for path in lfc_copy.glob("3-*"):
        path.unlink()
    with pytest.raises(QnnflowError, match=r"3-0-weights\.bin not found: layer 3"):
        bnn_pynq.import_bnn_pynq(lfc_copy)


def test_files_of_another_network_or_folding(lfc_copy, tmp_path):
    with pytest.raises(QnnflowError, match=r"0-0-thres\.bin holds 32 thresholds, expected 32 neurons x 2"):
        bnn_pynq.import_bnn_pynq(lfc_copy, "lfcW1A2")
    with pytest.raises(QnnflowError, match=r"0-0-weights\.bin holds 416 words, which fits no folding of a 64 x 27"):
        bnn_pynq.import_bnn_pynq(lfc_copy, "cnvW1A1")
    for suffix in ("weights", "thres"):
        (lfc_copy / f"1-63-{suffix}.bin").unlink()
    with pytest.raises(QnnflowError, match=r"layer 1 has 63 PE files, which does not divide its 1024 rows"):
        bnn_pynq.import_bnn_pynq(lfc_copy)
    cnv = tmp_path / "cnvW1A1"
    shutil.copytree(SHIPPED["cnvW1A1"], cnv)
    words = np.fromfile(cnv / "6-0-weights.bin", dtype="<u8")
    words[5] |= np.uint64(1 << 40)  # SIMD=4 binary lanes: bit 40 is no weight
    words.tofile(cnv / "6-0-weights.bin")
    with pytest.raises(QnnflowError, match=r"6-0-weights\.bin has bits set above lane 3 .*folding does not match"):
        bnn_pynq.import_bnn_pynq(cnv)


def test_export_folding_that_does_not_match_names_the_layer(imported, tmp_path):
    folding = {f"MVAU_{i}": {"PE": pe, "SIMD": simd} for i, (pe, simd) in
               enumerate(bnn_pynq.OVERLAY_FOLDINGS["cnvW1A1"])}
    folding["MVAU_2"]["SIMD"] = 48
    with pytest.raises(QnnflowError, match=r"layer 2 \('MVAU_2'\): SIMD=48 does not divide its 64 input channels"):
        bnn_pynq.export_bnn_pynq(imported("cnvW1A1"), "cnvW1A1", tmp_path / "out", folding)
    assert not (tmp_path / "out").exists()
    with pytest.raises(QnnflowError, match=r"cnvW1A1 has 9 layers, but the model has 4 MVAU nodes"):
        bnn_pynq.export_bnn_pynq(imported("lfcW1A1"), "cnvW1A1", tmp_path / "out")


def test_missing_parameters_name_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "data_dirs", lambda: [tmp_path / "cache"])
    want = str(tmp_path / "cache" / "bnn-pynq" / "mnist" / "lfcW1A1")
    with pytest.raises(QnnflowError, match=f"not found \\(looked in: {want}\\).*QNNFLOW_DATA"):
        bnn_pynq.shipped_dir("lfcW1A1")
    with pytest.raises(QnnflowError, match="parameter directory .*nowhere/lfcW1A1 not found"):
        bnn_pynq.import_bnn_pynq(tmp_path / "nowhere" / "lfcW1A1")
    with pytest.raises(QnnflowError, match="unknown BNN-PYNQ network 'lfcW2A1'"):
        bnn_pynq.network("lfcW2A1")


# ----- command line and build source ----------------------------------------------------------------------


def test_cli_export_writes_loadable_files(imported, tmp_path, capsys):
    model_path = tmp_path / "lfc.onnx"
    imported("lfcW1A1").save(str(model_path))
    out = tmp_path / "params" / "lfcW1A1"
    assert cli(["export-bnn-pynq", str(model_path), "--network", "lfcW1A1", "--out", str(out)]) == 0
    assert _files(out) == _files(SHIPPED["lfcW1A1"])
    bad = tmp_path / "fold.json"
    bad.write_text('{"MVAU_0": {"PE": 3, "SIMD": 64}, "MVAU_1": {"PE": 64, "SIMD": 32}, '
                   '"MVAU_2": {"PE": 32, "SIMD": 64}, "MVAU_3": {"PE": 16, "SIMD": 8}}')
    capsys.readouterr()
    code = cli(["export-bnn-pynq", str(model_path), "--network", "lfcW1A1", "--out", str(out), "--folding", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "layer 0 ('MVAU_0'): PE=3 does not divide" in err[0]
    assert _files(out) == _files(SHIPPED["lfcW1A1"])  # the earlier export is untouched


def test_build_source_yields_the_imported_graph():
    from qnnflow.models.export import export_source
    from qnnflow.models.source import model_source_problem

    model, golden = export_source(parse_model_source("bnn-pynq:lfcW1A1"), "random", 4, 0)
    assert [n.op_type for n in model.graph.node].count("MVAU") == 4
    np.testing.assert_array_equal(golden.output, execute_batch(model, golden.input))
    with pytest.raises(QnnflowError, match="brings its own trained parameters; remove the weights: field"):
        export_source(parse_model_source("bnn-pynq:lfcW1A1"), "my.ckpt", 4, 0)
    assert "unknown BNN-PYNQ network 'lfcW9A9'" in model_source_problem("bnn-pynq:lfcW9A9")
    assert "not found" in model_source_problem(f"bnn-pynq:{SHIPPED['lfcW1A1'].parent / 'nope'}")
