"""The model zoo: quantizers, topologies, random and checkpoint weights, QONNX export."""

import math

import numpy as np
import onnx
import pytest
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from onnx import numpy_helper

from qnnflow.base.errors import QnnflowError
from qnnflow.models.quant import quant_act, quant_input, quant_relu, weight_quant
from qnnflow.models.norms import TensorNorm
from qnnflow.models.zoo import ZOO, build_model, count_params, zoo_table

NAMES = sorted(ZOO)
SLOW = {"mobilenet_w4a4"}  # 27 quantized layers: half a minute to build; tests/models/test_mobilenet.py has a small one
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES]

# Layer shapes written out independently of the model code.
CNV_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
CNV_FCS = [(256, 512), (512, 512)]
FC_HIDDEN = {"lfc": [1024, 1024, 1024], "tfc": [64, 64, 64]}
# vgg10_1d: 2 I/Q channels, seven k=3 convs of 64 channels halving 1024 samples to 8, dense 128-128-24
VGG10_LAYERS = [(2 * 3, 64)] + [(64 * 3, 64)] * 6 + [(64 * 8, 128), (128, 128), (128, 24)]
CLASSES = {"cifar10": 10, "mnist": 10, "radioml2018": 24}
# MobileNet-v1 at width 0.5: the stem's channels, then each block's pointwise output channels
MOBILENET_WIDTHS = [16, 32, 64, 64, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
# ResNet-8: stem, then per stage two 3x3 convs and (when the shape changes) a 1x1 skip conv; FC 10
RESNET8_CONVS = [(3 * 9, 16), (16 * 9, 16), (16 * 9, 16), (16 * 9, 32), (32 * 9, 32), (16, 32),
                 (32 * 9, 64), (64 * 9, 64), (32, 64)]
RESNET8_ADDS = 3  # each followed by its own activation


def _layers(entry):
    """(weight layers [(fan_in, fan_out)], number of hidden activation layers)."""
    if entry.family == "cnv":
        layers = [(cin * 9, cout) for cin, cout in CNV_CONVS] + CNV_FCS + [(512, 10)]
    elif entry.family == "vgg10_1d":
        layers = VGG10_LAYERS
    elif entry.family == "mobilenet":  # stem; per block a depthwise 3x3 (9 weights a channel) and a pointwise 1x1
        widths = MOBILENET_WIDTHS
        layers = [(27, widths[0])]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [(9, cin), (cin, cout)]
        layers.append((widths[-1], 10))
    elif entry.family == "resnet8":
        layers = RESNET8_CONVS + [(64, 10)]
        return layers, len(layers) - 1 + RESNET8_ADDS
    else:
        widths = [784] + FC_HIDDEN[entry.family] + [10]
        layers = list(zip(widths[:-1], widths[1:]))
    return layers, len(layers) - 1


def _expected_params(entry):
    layers, _ = _layers(entry)
    weights = sum(i * o for i, o in layers)
    batch_norms = sum(2 * o for _, o in layers[:-1])  # gamma and beta per channel
    return weights + batch_norms + 2  # TensorNorm: one weight, one bias


def _scale(bits):
    """The quantizer step: 1 up to 2 bits, then the power of two 2^-(b-1)."""
    return 1.0 if bits <= 2 else 2.0 ** -(bits - 1)


def _codes(values, bits):
    """Integer codes of quantized values (value / scale); fails if any is off the grid."""
    scaled = np.asarray(values, dtype=np.float64) / _scale(bits)
    codes = np.round(scaled)
    np.testing.assert_allclose(scaled, codes, atol=1e-4)
    return codes.astype(np.int64)


def _all_codes(bits):
    return {-1, 1} if bits == 1 else set(range(-(2 ** (bits - 1) - 1), 2 ** (bits - 1)))


def _input(entry, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    low, high = entry.input_range
    return torch.rand((n,) + tuple(entry.input_shape[1:]), generator=g) * (high - low) + low


# ---------------------------------------------------------------- quantizers


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_weight_and_act_quantizers_hit_exactly_the_narrow_levels(bits):
    x = torch.linspace(-1.5, 1.5, 2001)
    act = quant_act(bits).eval()
    with torch.no_grad():
        y = act(x).numpy()
    assert set(_codes(y, bits).tolist()) == _all_codes(bits)  # on the grid, every level reached
    # round to the nearest level of x clamped to the largest level (exact ties excluded);
    # 1 bit: sign, with sign(0) = +1
    scale = _scale(bits)
    limit = 1.0 if bits == 1 else (2 ** (bits - 1) - 1) * scale
    xs = np.clip(x.numpy().astype(np.float64), -limit, limit)
    if bits == 1:
        np.testing.assert_array_equal(y, np.where(xs >= 0, 1.0, -1.0))
    else:
        frac = xs / scale - np.floor(xs / scale)
        off_tie = np.abs(frac - 0.5) > 1e-4
        np.testing.assert_allclose(y[off_tie], (np.round(xs / scale) * scale)[off_tie], atol=1e-6)

    fc = QuantLinear(2001, 1, bias=False, weight_quant=weight_quant(bits))
    with torch.no_grad():
        fc.weight.copy_(x[None])
    w = fc.quant_weight().value.detach().numpy()[0]
    np.testing.assert_allclose(w, y, atol=1e-6)  # same quantizer for weights


def test_input_quantizer_is_8_bit_power_of_two():
    q = quant_input(8).eval()
    x = torch.tensor([-2.0, -1.0, -0.5, 0.3, 1 - 2**-7, 1.0, 3.0])
    with torch.no_grad():
        y = q(x)
    expected = torch.clamp(torch.round(x * 128), -128, 127) / 128
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_relu_quantizer_is_unsigned_with_the_power_of_two_step(bits):
    x = torch.linspace(-1.0, 3.0, 4001)
    with torch.no_grad():
        y = quant_relu(bits).eval()(x).numpy().astype(np.float64)
    step = 2.0 ** -(bits - 1)
    top = 2**bits - 1
    assert set(_codes(y, bits).tolist()) == set(range(top + 1))  # every level 0 .. 2^b - 1, none negative
    exact = np.abs(x.numpy() / step - np.round(x.numpy() / step)) != 0.5  # ties excluded
    expected = np.clip(np.round(x.numpy().astype(np.float64) / step), 0, top) * step
    np.testing.assert_array_equal(y[exact], expected[exact])


def test_bad_bit_width_is_one_line_error():
    with pytest.raises(QnnflowError, match="bit width 0"):
        weight_quant(0)


def test_tensor_norm_eval_and_training():
    tn = TensorNorm(eps=1e-4)
    with torch.no_grad():
        tn.running_mean.fill_(2.0)
        tn.running_var.fill_(4.0)
        tn.weight.fill_(-3.0)
        tn.bias.fill_(0.5)
    x = torch.randn(5, 10)
    tn.eval()
    torch.testing.assert_close(tn(x), (x - 2.0) / math.sqrt(4.0 + 1e-4) * -3.0 + 0.5)
    tn.train()
    tn.reset_parameters()
    x = torch.randn(64, 10) * 3 + 1
    y = tn(x)
    assert abs(y.mean().item()) < 1e-5 and abs(y.std(unbiased=False).item() - 1) < 1e-3
    torch.testing.assert_close(tn.running_mean, 0.1 * x.mean().reshape(1))
    torch.testing.assert_close(tn.running_var, 0.9 + 0.1 * x.var().reshape(1))


# ---------------------------------------------------------------- zoo


@pytest.mark.parametrize("name", NAMES)
def test_every_model_builds_runs_and_is_non_degenerate(name):
    entry = ZOO[name]
    model = build_model(name)
    assert not model.training
    acts = []
    hooks = [m.register_forward_hook(lambda m, i, o: acts.append(o))
             for n, m in model.named_modules() if isinstance(m, (QuantIdentity, QuantReLU)) and n != "input_quant"]
    x = _input(entry, 16)
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    assert y.shape == (16, CLASSES[entry.dataset]) and torch.isfinite(y).all()
    assert (y.std(0) > 0).all()  # logits depend on the input
    _, n_act = _layers(entry)
    assert len(acts) == n_act
    for i, a in enumerate(acts):
        codes = np.unique(_codes(a.numpy(), entry.act_bits))  # fails on off-grid values
        if entry.family in ("vgg10_1d", "mobilenet"):  # QuantReLU: unsigned codes, zero included
            assert codes.min() == 0 < codes.max(), f"layer {i}: activations all zero"
        else:
            assert codes.min() < 0 < codes.max(), f"layer {i}: activations all one sign"
        if entry.act_bits > 1:
            assert len(codes) >= 3, f"layer {i}: only codes {codes} used"
        per_channel = a.transpose(0, 1).reshape(a.shape[1], -1)
        varying = (per_channel.max(1).values > per_channel.min(1).values).float().mean().item()
        assert varying > 0.6, f"layer {i}: only {varying:.0%} of channels respond to the input"


def test_random_weights_are_seeded_and_leave_global_rng_alone():
    before = torch.get_rng_state()
    a, b, c = build_model("tfc_w2a2", seed=1), build_model("tfc_w2a2", seed=1), build_model("tfc_w2a2", seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    differing = [k for k in sa if sa[k].is_floating_point() and not torch.equal(sa[k], sc[k])]
    assert len(differing) == sum(1 for k in sa if sa[k].is_floating_point())
    x = _input(ZOO["tfc_w2a2"], 8)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", ["cnv_w1a1", "lfc_w1a2"])
def test_random_batch_norms_have_flipped_channels_and_spread_stats(name):
    model = build_model(name, seed=5)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    layers, _ = _layers(ZOO[name])
    assert len(norms) == len(layers) - 1
    seen = {}
    hooks = [bn.register_forward_pre_hook(lambda m, a: seen.__setitem__(m, a[0])) for bn in norms]
    with torch.no_grad():
        model(_input(ZOO[name], 64, seed=11))
    for h in hooks:
        h.remove()
    for bn in norms:
        x = seen[bn]
        dims = [d for d in range(x.dim()) if d != 1]
        mu, var = x.mean(dim=dims), x.var(dim=dims).clamp_min(1e-6)
        flipped = (bn.weight < 0).float().mean().item()
        assert 0 < flipped < 0.3
        assert ((bn.weight.abs() >= 0.5) & (bn.weight.abs() <= 1.5)).all()
        # statistics drawn around the norm's real input: var ~ sd^2 U(0.5, 1.5), mean ~ mu + N(0, 0.3 sd)
        ratio = bn.running_var / var
        assert 0.6 < ratio.median() < 1.4
        assert ((ratio > 0.3) & (ratio < 3)).float().mean() > 0.9  # two random batches differ a little
        z = (bn.running_mean - mu) / var.sqrt()
        assert 0.15 < z.std() < 0.6 and abs(z.mean()) < 0.2
        assert abs(bn.bias.mean()) < 0.1 and 0.1 < bn.bias.std() < 0.3  # ~N(0, 0.2^2)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_layer_shapes(name):
    expected = _expected_params(ZOO[name])
    assert count_params(build_model(name)) == expected
    row = {r["name"]: r for r in zoo_table()}[name]
    assert row["params"] == expected


def test_zoo_table_rows():
    rows = zoo_table()
    assert [r["name"] for r in rows] == list(ZOO)
    for r in rows:
        assert set(r) == {"name", "family", "dataset", "weight_bits", "act_bits", "in_bits", "params", "input_shape"}
        suffix = "" if r["in_bits"] == 8 else f"_in{r['in_bits']}"
        assert r["name"] == f"{r['family']}_w{r['weight_bits']}a{r['act_bits']}{suffix}"
        assert (r["dataset"], r["input_shape"]) in {("cifar10", (1, 3, 32, 32)), ("mnist", (1, 1, 28, 28)),
                                                    ("radioml2018", (1, 2, 1024))}


@pytest.mark.parametrize("wrap", [False, True])
def test_checkpoint_round_trip(tmp_path, wrap):
    model = build_model("cnv_w2a2", seed=7)
    path = tmp_path / "ckpt.pt"
    state = model.state_dict()
    torch.save({"state_dict": state, "epoch": 3} if wrap else state, path)
    loaded = build_model("cnv_w2a2", weights=str(path))
    assert not loaded.training
    x = _input(ZOO["cnv_w2a2"], 4)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        assert not torch.equal(build_model("cnv_w2a2", seed=0)(x), loaded(x))


def _one_line_error(match, fn, *args, **kw):
    with pytest.raises(QnnflowError, match=match) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_checkpoints(tmp_path):
    missing = tmp_path / "nope.pt"
    assert str(missing) in _one_line_error("not found", build_model, "tfc_w1a1", weights=missing)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert str(garbage) in _one_line_error("cannot be read", build_model, "tfc_w1a1", weights=garbage)

    other = tmp_path / "lfc.pt"  # same keys, other shapes
    torch.save(build_model("lfc_w1a1").state_dict(), other)
    msg = _one_line_error("shape", build_model, "tfc_w1a1", weights=other)
    assert str(other) in msg and "'features.0.weight'" in msg

    state = build_model("tfc_w1a1").state_dict()
    lacking = tmp_path / "lacking.pt"
    torch.save({k: v for k, v in state.items() if k != "features.1.running_var"}, lacking)
    assert "'features.1.running_var'" in _one_line_error("lacks key", build_model, "tfc_w1a1", weights=lacking)

    extra = tmp_path / "extra.pt"
    torch.save({**state, "head.weight": torch.zeros(1)}, extra)
    assert "'head.weight'" in _one_line_error("unexpected key", build_model, "tfc_w1a1", weights=extra)

    not_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_tensors)
    _one_line_error("no state_dict", build_model, "tfc_w1a1", weights=not_tensors)


def test_unknown_model_suggests_and_lists():
    msg = _one_line_error("unknown model 'cnv_w1a3'", build_model, "cnv_w1a3")
    assert "did you mean 'cnv_w1a" in msg
    assert all(n in msg for n in ZOO)
    assert "did you mean" not in _one_line_error("unknown model", build_model, "yolov5s")


# ---------------------------------------------------------------- QONNX export


@pytest.mark.parametrize("name", NAMES)
def test_qonnx_export_node_types(name, tmp_path):
    entry = ZOO[name]
    path = tmp_path / f"{name}.onnx"
    export_qonnx(build_model(name), _input(entry, 1), str(path), dynamo=False)
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    layers, n_act = _layers(entry)
    n_w = len(layers)
    binary_input = entry.in_bits == 1  # the input quantizer is then a sign (BipolarQuant)
    expected_bipolar = binary_input + (n_w if entry.weight_bits == 1 else 0) + (n_act if entry.act_bits == 1 else 0)
    expected_quant = (not binary_input) + (n_w if entry.weight_bits > 1 else 0) + (n_act if entry.act_bits > 1 else 0)
    assert ops.count("BipolarQuant") == expected_bipolar
    assert ops.count("Quant") == expected_quant
    if binary_input:
        return

    # the first Quant is the 8-bit input quantizer: scale 2^-7, zero point 0, signed, not narrow
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    first = next(n for n in graph.node if n.op_type == "Quant")
    scale, zero, bits = (float(consts[i]) for i in first.input[1:])
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in first.attribute}
    assert (scale, zero, bits) == (2.0**-7, 0.0, 8.0)
    assert attrs["signed"] == 1 and attrs["narrow"] == 0
