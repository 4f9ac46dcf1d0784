"""qnnflow sweep: a grid of builds on a local process pool (and on Ray, slow), one merged table."""

import json
from pathlib import Path

import pytest

from qnnflow.flow.cli import main
from qnnflow.flow.sweep import run_sweep

REPO = Path(__file__).resolve().parents[2]


def sweep_file(tmp_path, workers=2):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"build: {REPO / 'builds' / 'tfc_w1a1.yaml'}\nset: [golden.count=2]\n"
                    "grid:\n  prune.sparsity: [0, 0.5]\n  fold.lut: [0.5, 1.5]\n"
                    f"to: fold\nworkers: {workers}\n")
    return path


def figures(table):
    return [{k: v for k, v in row.items() if k != "cached"} for row in table["points"]]


def test_four_point_tfc_sweep_on_the_local_pool(tmp_path, capsys):
    path, out = sweep_file(tmp_path), tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 1  # two points fail, the others are built
    printed = capsys.readouterr().out
    assert "2 of 4 points built, 2 failed" in printed and "fold.lut (from --set): must be a fraction" in printed
    table = json.loads((out / "sweep.json").read_text())
    ok = [row for row in table["points"] if row["status"] == "ok"]
    assert [(row["prune.sparsity"], row["fold.lut"]) for row in ok] == [(0, 0.5), (0.5, 0.5)]
    for row in ok:  # each point's figures are its own build's reports
        folding = json.loads((out / row["dir"] / "report" / "folding.json").read_text())
        assert row["estimated_fps"] == folding["estimated_throughput_fps"]
        assert row["LUT"] == folding["resources"]["LUT"]["used"]
    assert ok[1]["LUT"] < ok[0]["LUT"] and ok[1]["pareto"]  # pruned: as fast here, smaller
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # a rerun reuses every finished point through the build cache, and gives the same table
    again = run_sweep(path, out, log=lambda line: None)
    assert all(row["cached"] for row in again["points"] if row["status"] == "ok")
    assert figures(again) == figures(table)


@pytest.mark.slow
def test_the_same_sweep_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    path = sweep_file(tmp_path)
    local = run_sweep(path, tmp_path / "pool", log=lambda line: None)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        on_ray = run_sweep(path, tmp_path / "ray", ray_address="auto", log=lambda line: None)
    finally:
        ray.shutdown()
    assert figures(on_ray) == figures(local)


def test_bad_sweep_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"build: {REPO / 'builds' / 'tfc_w1a1.yaml'}\ngrid: {{prune.sparsity: 0.5}}\n")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "grid: expected a mapping of field -> non-empty list" in err
