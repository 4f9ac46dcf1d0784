import json
from pathlib import Path

import pytest
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.flow.cli import EXIT_BAD_INPUT, EXIT_BUILD_FAILED, main
from qnnflow.flow.config import DEFAULT_STEPS
from qnnflow.flow.runner import step_filename
from qnnflow.hls.partition import is_hw

from .conftest import REPO, assert_every_step_checked
from .test_runner import _cli


def test_build_ok_exit_zero(tfc_build, tmp_path, capsys):
    assert main(["build", str(tfc_build()), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "[2/2] tidy" in out and "done in" in out


def test_default_steps_fold_then_simulate_the_folded_cpp(tmp_path, monkeypatch, capsys):
    """No steps: field: the default order runs; a relative --out works for the compiler too."""
    (tmp_path / "tfc.yaml").write_text("model: tfc_w1a1\nboard: pynq-z1\ngolden: {count: 2}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["build", "tfc.yaml", "--out", "out"]) == 0
    out = tmp_path / "out"
    log = json.loads((out / "build_log.json").read_text())
    assert [s["name"] for s in log["steps"]] == DEFAULT_STEPS
    assert_every_step_checked(log)
    folding = json.loads((out / "report" / "folding.json").read_text())
    performance = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    # estimate reports the folded design, and the folding is not the trivial one
    assert performance["estimated_throughput_fps"] == folding["estimated_throughput_fps"]
    config = json.loads((out / "folding_config.json").read_text())
    assert any(v.get("PE", 1) * v.get("SIMD", 1) > 1 for k, v in config.items() if k != "Defaults")
    assert json.loads((out / "cppsim" / "result.json").read_text())["bit_exact"] is True
    # the host head and tail are listed in the log
    notes = next(s["notes"] for s in log["steps"] if s["name"] == "to_hw")
    assert any(n.startswith("host head (before the accelerator): ") for n in notes)
    assert any(n.startswith("host tail (after the accelerator): ") for n in notes)
    check_estimate_reports(out, log["clock_ns"], capsys.readouterr().out)


def test_the_default_build_cnv_w1a1_on_pynq_z1(tmp_path, capsys):
    """What `make build` runs: CNV w1a1 folded for the Pynq-Z1, its C++ simulated bit-exact."""
    build = Path(__file__).resolve().parents[2] / "builds" / "cnv_w1a1.yaml"
    out = tmp_path / "cnv"
    assert main(["build", str(build), "--board", "pynq-z1", "--out", str(out), "--set", "golden.count=2"]) == 0
    log = json.loads((out / "build_log.json").read_text())
    assert [s["name"] for s in log["steps"]] == DEFAULT_STEPS
    assert_every_step_checked(log)
    folding = json.loads((out / "report" / "folding.json").read_text())
    assert folding["within_budget"] and folding["estimated_throughput_fps"] >= 9150  # BNN-PYNQ's measured rate
    result = json.loads((out / "cppsim" / "result.json").read_text())
    assert result["bit_exact"] is True and result["images"] == 2
    check_estimate_reports(out, log["clock_ns"], capsys.readouterr().out)


def check_estimate_reports(out, clock_ns, terminal):
    """FINN's report files, consistent with each other and with the hardware nodes of the graph."""
    report = out / "report"
    cycles = json.loads((report / "estimate_layer_cycles.json").read_text())
    resources = json.loads((report / "estimate_layer_resources.json").read_text())
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    # the AXI port adapters frame the hardware nodes
    layers = ["input port", *(n.name for n in ModelWrapper(str(out / step_filename(DEFAULT_STEPS.index("estimate"), "estimate"))).graph.node if is_hw(n)),
              "output port"]
    assert list(cycles) == layers and list(resources) == [*layers, "total"]
    for key in ("LUT", "BRAM_18K", "DSP"):
        assert resources["total"][key] == sum(resources[n][key] for n in layers)
    bottleneck = max(cycles, key=cycles.get)
    assert perf["max_cycles"] == cycles[bottleneck] and perf["max_cycles_node_name"] == bottleneck
    assert perf["critical_path_cycles"] == sum(cycles.values())
    assert perf["estimated_throughput_fps"] == pytest.approx(1e9 / (cycles[bottleneck] * clock_ns))
    assert perf["estimated_latency_ns"] == pytest.approx(sum(cycles.values()) * clock_ns)
    assert (report / "estimate.png").read_bytes()[:4] == b"\x89PNG"
    table = [line for line in terminal.splitlines() if line.startswith(bottleneck + " ")]
    # One table per build: fold's, which shows the folding next to the same figures.
    assert len(table) == 1 and table[0].endswith("<- bottleneck")
    assert any(line.startswith(f"[{DEFAULT_STEPS.index('estimate') + 1}/") and " estimate " in line and line.endswith("checked: none")
               for line in terminal.splitlines())


def test_bad_yaml_exits_2_with_one_line(tfc_build, tmp_path, capsys):
    code = main(["build", str(tfc_build("boad: x\n")), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "boad: unknown key" in err
    assert not (tmp_path / "o").exists()


def test_unknown_board_and_bad_range_exit_2(tfc_build, tmp_path, capsys):
    assert main(["build", str(tfc_build()), "--board", "pynq-z9"]) == EXIT_BAD_INPUT
    assert "board (from --set): unknown board 'pynq-z9'" in capsys.readouterr().err
    assert main(["build", str(tfc_build()), "--to", "export", "--from", "tidy"]) == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    "content, expected",
    [
        (bytes(range(256)) * 4, "not a YAML text file (byte 0x80 at offset 128 is not UTF-8 text)"),
        (b"model: tfc_w1a1\nboard: pynq-z1\nmodel: tfc_w2a2\n", "line 3: key 'model' appears twice (first on line 1)"),
        (b"model: tfc_w1a1\nboard: pynq-z1\nweights: gone.pt\n", "weights: checkpoint '"),
        (b"model: tfc_w1a1\nboard: pynq-z1\nclock_ns: 0.1\n", "clock_ns: 0.1 ns (10000 MHz) is outside"),
    ],
    ids=["binary", "duplicate_key", "missing_checkpoint", "clock_too_fast"],
)
def test_bad_build_file_exits_2_with_one_line_naming_the_file(tmp_path, capsys, content, expected):
    path = tmp_path / "build.yaml"
    path.write_bytes(content)
    assert main(["build", str(path), "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ") and expected in err, err
    assert not (tmp_path / "o").exists()


def test_from_without_an_earlier_run_exits_2(tfc_build, tmp_path, capsys):
    assert main(["build", str(tfc_build()), "--out", str(tmp_path / "o"), "--from", "tidy"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--from tidy: no valid output of step 'export'" in err


def test_failed_verification_exits_1(tfc_build, tmp_path, capsys):
    build = tfc_build(steps='[export, "tests.flow.helpers:corrupt_first_matmul"]')
    assert main(["build", str(build), "--out", str(tmp_path / "o")]) == EXIT_BUILD_FAILED
    assert "first differing node" in capsys.readouterr().err


def test_steps_and_models_listing(capsys):
    from qnnflow.flow.registry import registered_steps

    assert main(["steps"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    others = sorted(set(registered_steps()) - set(DEFAULT_STEPS))
    assert listed[: len(DEFAULT_STEPS)] == DEFAULT_STEPS and sorted(listed[len(DEFAULT_STEPS):]) == others
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "cnv_w1a1" in listing and "tfc_w2a2" in listing and "vgg10_1d_w4a4" in listing
    assert len({line.index(line.split()[1], len(line.split()[0])) for line in listing.splitlines()}) == 1  # aligned


def test_version_and_boards(capsys):
    from qnnflow.base import __version__
    from qnnflow.flow.boards import known_boards, load_board

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"qnnflow {__version__}\n"
    assert main(["boards"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == known_boards()
    for row in rows:
        board = load_board(row.split()[0])
        r = board["resources"]
        assert row.split()[1:6] == [board["part"], f"{r['LUT']:,}", f"{r['FF']:,}", f"{r['BRAM18']:,}", f"{r['DSP']:,}"]
        assert f"{board['clock_ns']:g} ns" in row


def test_makefile_torch_index_applies_to_the_torch_install_only():
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def setup_commands(*args):
        done = subprocess.run(["make", "-n", "setup", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return [line for line in done.stdout.splitlines() if "pip install" in line]

    plain = setup_commands()
    assert len(plain) == 2 and not any("index-url" in line for line in plain)
    torch, rest = setup_commands("TORCH_INDEX=https://example.invalid/cpu")
    assert "torch==" in torch and "--index-url https://example.invalid/cpu" in torch
    assert "index-url" not in rest


def test_console_entry_point_usage_error():
    result = _cli(["build"])
    assert result.returncode == 2 and "build_file" in result.stderr
