"""The trainer: tiny runs on a subset (the loss falls), resume, determinism, DDP, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.cli import main
from qnnflow.models import data
from qnnflow.models.train import augment, compact_checkpoint, train
from qnnflow.models.train_config import TrainConfig, train_config
from qnnflow.models.zoo import build_model, untrained_model

TINY = TrainConfig(epochs=2, batch_size=50, seed=0)
LIMITS = {"train_limit": 1000, "test_limit": 300}
QUIET = {"progress": False, "log": lambda line: None}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
QNNFLOW = [sys.executable, "-m", "qnnflow.flow.cli"]


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "tfc"
    return train("tfc_w1a1", TINY, out, **LIMITS, **QUIET)


def test_two_tiny_epochs_lower_the_loss_and_write_every_output(tiny_run):
    first, second = tiny_run.history
    assert second["train_loss"] < first["train_loss"]
    assert tiny_run.best_test_acc > 0.3  # chance is 0.1
    out = tiny_run.out_dir
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss,train_acc,test_loss,test_acc") and len(rows) == 3
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["best_epoch"] == tiny_run.best_epoch and len(summary["epochs"]) == 2


def test_the_best_checkpoint_builds_the_model_it_scored(tiny_run):
    model = build_model("tfc_w1a1", weights=str(tiny_run.out_dir / "best.pt"))
    images, labels = data.load_mnist("test")
    chosen = data.spread_indices(len(images), 300)
    with torch.no_grad():
        scores = model(torch.from_numpy(data.preprocess(images[chosen], "mnist")))
    accuracy = float((scores.argmax(1).numpy() == labels[chosen]).mean())
    assert accuracy == pytest.approx(tiny_run.best_test_acc)


def test_resume_continues_at_the_next_epoch_exactly_as_an_uninterrupted_run(tiny_run, tmp_path):
    out = tmp_path / "run"
    train("tfc_w1a1", TrainConfig(epochs=1, batch_size=50, seed=0), out, **LIMITS, **QUIET)
    lines = []
    resumed = train("tfc_w1a1", TINY, out, resume=True, **LIMITS, progress=False, log=lines.append)
    assert lines[0].startswith("resuming tfc_w1a1 at epoch 2 of 2")
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    straight, continued = _weights(tiny_run.out_dir), _weights(out)
    assert all(torch.equal(straight[k], continued[k]) for k in straight)


def test_a_run_directory_is_not_overwritten_without_resume(tiny_run):
    with pytest.raises(QnnflowError, match="pass --resume to continue it"):
        train("tfc_w1a1", TINY, tiny_run.out_dir, **LIMITS, **QUIET)


def test_resume_refuses_a_finished_run_and_another_model(tiny_run, tmp_path):
    with pytest.raises(QnnflowError, match="finished 2 of 2 epochs: pass --epochs above 2"):
        train("tfc_w1a1", TINY, tiny_run.out_dir, resume=True, **LIMITS, **QUIET)
    shutil.copy(tiny_run.out_dir / "last.pt", tmp_path / "last.pt")
    with pytest.raises(QnnflowError, match="a run of model 'tfc_w1a1', not of 'tfc_w1a2'"):
        train("tfc_w1a2", TINY, tmp_path, resume=True, **LIMITS, **QUIET)


def test_two_gloo_processes_train_the_same_weights_as_one(tmp_path):
    args = ["train", "tfc_w1a1", "--epochs", "1", "--batch-size", "100", "--train-limit", "600", "--test-limit", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517"]
    subprocess.run([*torchrun, "--no-python", *QNNFLOW, *args, "--out", str(tmp_path / "two")], check=True, env=env,
                   capture_output=True, cwd=tmp_path)
    subprocess.run([*QNNFLOW, *args, "--out", str(tmp_path / "one")], check=True, env=env,
                   capture_output=True, cwd=tmp_path)
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["processes"] == 2
    for key in one:  # equal up to the order of float sums (Adam can turn that noise into 1e-4 on a near-zero gradient)
        torch.testing.assert_close(two[key].float(), one[key].float(), rtol=1e-5, atol=1e-3, msg=key)


def test_augmentation_crops_a_padded_window_and_flips_some(tmp_path):
    image = torch.rand(1, 3, 32, 32)
    batch = augment(image.repeat(64, 1, 1, 1), torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(image[0], (4, 4, 4, 4))
    windows = {(dy, dx, flip): padded[:, dy:dy + 32, dx:dx + 32].flip(-1) if flip else padded[:, dy:dy + 32, dx:dx + 32]
               for dy in range(9) for dx in range(9) for flip in (False, True)}
    found = [next(k for k, w in windows.items() if torch.equal(w, out)) for out in batch]
    assert {k[2] for k in found} == {False, True} and len({k[:2] for k in found}) > 10


def test_the_recipe_config_and_overrides(tmp_path):
    cfg = train_config("lfc_w1a1", "lfc", overrides={"epochs": 3, "lr": None})
    assert (cfg.epochs, cfg.lr, cfg.loss, cfg.batch_size) == (3, 0.02, "sqr_hinge", 100)
    assert cfg.lr_at(0) == 0.02 and cfg.lr_at(3) < 1e-12  # cosine to zero
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(QnnflowError, match=r"bad.yaml: learning_rate: unknown field"):
        train_config("lfc_w1a1", "lfc", bad)
    with pytest.raises(QnnflowError, match=r"--batch-size: must be > 0"):
        train_config("lfc_w1a1", "lfc", overrides={"batch_size": 0})


def test_dropout_only_in_training_and_weights_clipped(tiny_run):
    model = untrained_model("tfc_w1a1")
    x = torch.rand(4, 1, 28, 28)
    assert not torch.equal(model(x), model(x))  # dropout masks differ between calls
    model.eval()
    assert torch.equal(model(x), model(x))
    state = _weights(tiny_run.out_dir)
    assert all(state[k].abs().max() <= 1 for k in state if k.endswith(".weight") and state[k].dim() == 2)


def test_a_checkpoint_of_another_model_is_named_with_both(tmp_path):
    path = tmp_path / "lfc.pt"
    torch.save({"model": "lfc_w1a1", "state_dict": untrained_model("lfc_w1a1").state_dict()}, path)
    with pytest.raises(QnnflowError, match=r"lfc.pt holds weights of model 'lfc_w1a1', not of 'tfc_w1a1'"):
        build_model("tfc_w1a1", weights=str(path))
    torch.save(untrained_model("lfc_w1a1").state_dict(), path)  # a bare state_dict: the shapes tell
    with pytest.raises(QnnflowError, match=r"key 'features.0.weight' has shape \(1024, 784\), model 'tfc_w1a1' expects"):
        build_model("tfc_w1a1", weights=str(path))


def test_a_build_with_another_models_checkpoint_is_bad_input(tmp_path, capsys):
    path = tmp_path / "lfc.pt"
    torch.save({"model": "lfc_w1a1", "state_dict": untrained_model("lfc_w1a1").state_dict()}, path)
    build = Path(__file__).resolve().parents[2] / "builds" / "tfc_w1a1.yaml"
    assert main(["build", str(build), "--set", f"weights={path}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "weights (from --set)" in err and "'lfc_w1a1', not of 'tfc_w1a1'" in err
    assert not (tmp_path / "o").exists()


def test_missing_data_names_the_cache_to_put_it_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_shared_data_dir", lambda: tmp_path / "nothing")
    monkeypatch.delenv("QNNFLOW_DATA", raising=False)
    monkeypatch.setenv("QNNFLOW_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["train", "tfc_w1a1", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "cache" / "qnnflow" / "data" / "mnist" / "train-images-idx3-ubyte.gz") in err
    assert not (tmp_path / "run").exists()


def test_a_compact_checkpoint_stores_binary_weights_as_int8_and_computes_the_same(tiny_run, tmp_path):
    compact_checkpoint("tfc_w1a1", tiny_run.out_dir / "best.pt", tmp_path / "small.pt")
    state = torch.load(tmp_path / "small.pt", weights_only=True)["state_dict"]
    assert state["features.0.weight"].dtype == torch.int8
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        full = build_model("tfc_w1a1", weights=str(tiny_run.out_dir / "best.pt"))(x)
        small = build_model("tfc_w1a1", weights=str(tmp_path / "small.pt"))(x)
    assert torch.equal(full, small)


def test_weights_trained_is_a_real_network_offline():
    images, labels = data.load_mnist("test")
    with torch.no_grad():
        scores = build_model("tfc_w1a1", weights="trained")(torch.from_numpy(data.preprocess(images[:2000], "mnist")))
    assert float((scores.argmax(1).numpy() == labels[:2000]).mean()) > 0.9
    with pytest.raises(QnnflowError, match=r"no trained checkpoint of 'tfc_w2a2' is shipped.*qnnflow train tfc_w2a2"):
        build_model("tfc_w2a2", weights="trained")
