"""``qnnflow sweep SWEEP.yaml``: one build per point of a grid of ``--set`` overrides, merged into one table.

A sweep file names a base build and a grid::

    build: ../builds/tfc_w1a1.yaml      # relative to the sweep file
    set: [golden.count=2]               # overrides of every point (optional)
    grid:                               # every combination is a point
      prune.sparsity: [0, 0.3, 0.6]
      fold.lut: [0.5, 0.85]
    to: estimate                        # stop each build after this step (optional)
    workers: 2                          # local processes (optional; default: the CPU count)

Each point builds into its own directory (``OUT/points/NN_key=value_...``) through the runner,
so a failed point is reported and the rest go on, and a rerun reuses every finished step
through the build cache.  The points run on a local process pool, or on Ray (``--ray auto`` or
a cluster address; ``pip install qnnflow[distributed]``).  The merged table goes to
``OUT/sweep.json`` and ``OUT/sweep.png`` (estimated FPS against LUT, the Pareto front marked).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

from qnnflow.base.errors import BadInputError, QnnflowError
from qnnflow.base.plots import png_bytes
from qnnflow.flow.artifacts import write_bytes_atomic, write_json_atomic
from qnnflow.flow.yaml_io import load_yaml_file

SWEEP_FIELDS = ("build", "set", "grid", "to", "workers")


def load_sweep(path: Path) -> dict:
    """The sweep file, checked: one line naming the file and field on a problem."""
    raw = load_yaml_file(path, "sweep file not found") or {}
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: expected a mapping (build:, grid:, ...)")
    unknown = [k for k in raw if k not in SWEEP_FIELDS]
    if unknown:
        raise BadInputError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(SWEEP_FIELDS)})")
    if not isinstance(raw.get("build"), str):
        raise BadInputError(f"{path}: build: required, the base build YAML (relative to the sweep file)")
    build = (path.parent / raw["build"]).resolve()
    if not build.is_file():
        raise BadInputError(f"{path}: build: {build} not found")
    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise BadInputError(f"{path}: grid: expected a mapping of field -> non-empty list of values, "
                            f"e.g. {{prune.sparsity: [0, 0.5]}}")
    common = raw.get("set") or []
    if not isinstance(common, list) or not all(isinstance(s, str) and "=" in s for s in common):
        raise BadInputError(f"{path}: set: expected a list of key=value overrides")
    workers = raw.get("workers") or os.cpu_count() or 1
    if not isinstance(workers, int) or workers < 1:
        raise BadInputError(f"{path}: workers: expected a positive integer")
    return {"build": build, "set": common, "grid": grid, "to": raw.get("to"), "workers": workers}


def points(sweep: dict) -> list[dict]:
    """Every combination of the grid: its values and the overrides that build it."""
    keys = list(sweep["grid"])
    found = []
    for values in itertools.product(*(sweep["grid"][k] for k in keys)):
        setting = dict(zip(keys, values))
        overrides = [*sweep["set"], *(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                                      for k, v in setting.items())]
        found.append({"setting": setting, "overrides": overrides})
    return found


def point_dir(out: Path, index: int, setting: dict) -> Path:
    slug = "_".join(f"{k}={v}" for k, v in setting.items())
    return out / "points" / f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.=-]+', '-', slug)}"


def build_point(build_file: str, overrides: list[str], out_dir: str, to_step: str | None) -> dict:
    """Run one point's build (in a worker process); its outcome and headline figures, never an exception."""
    from qnnflow.flow.cli import quiet_warnings
    from qnnflow.flow.config import load_config
    from qnnflow.flow.runner import Runner

    quiet_warnings()  # a worker process does not run the command's main()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with open(out / "sweep_point.log", "w") as log:
            cfg = load_config(build_file, overrides)
            result = Runner(cfg, out, progress=lambda line: print(line, file=log, flush=True)).run(to_step=to_step)
    except QnnflowError as err:
        return {"status": "failed", "error": str(err)}
    except Exception as err:  # a point's crash is that point's failure; the sweep goes on
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    cached = all(step["cached"] for step in result["steps"])
    return {"status": "ok", "cached": cached, **_figures(out)}


def _figures(out: Path) -> dict:
    """Headline figures a finished point's reports hold (estimates of qnnflow's cost model)."""
    figures = {}
    folding = out / "report" / "folding.json"
    if folding.is_file():
        data = json.loads(folding.read_text())
        figures["estimated_fps"] = data["estimated_throughput_fps"]
        figures.update({r: data["resources"][r]["used"] for r in ("LUT", "BRAM18", "DSP")})
    pruned = out / "report" / "prune.json"
    if pruned.is_file():
        kept = [p for p in json.loads(pruned.read_text())["points"] if p["kept"]]
        figures["accuracy"] = kept[-1]["accuracy"]
    return figures


def _run_local(jobs: list[tuple], workers: int) -> list[dict]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(build_point, *zip(*jobs)))


def _run_ray(jobs: list[tuple], address: str) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise BadInputError("--ray: Ray is not installed; pip install 'qnnflow[distributed]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(build_point)
        return ray.get([remote.remote(*job) for job in jobs])
    finally:
        if started:
            ray.shutdown()


def run_sweep(path: Path, out: Path | None = None, ray_address: str | None = None, log=print) -> dict:
    """Build every point (failures reported, not raised); write and return the merged table."""
    from qnnflow.transforms.prune_report import pareto_front

    sweep = load_sweep(Path(path))
    out = Path(out) if out else Path("out") / f"sweep-{Path(path).stem}"
    grid = points(sweep)
    jobs = [(str(sweep["build"]), p["overrides"], str(point_dir(out, i, p["setting"])), sweep["to"])
            for i, p in enumerate(grid)]
    where = f"Ray {ray_address}" if ray_address else f"{sweep['workers']} local processes"
    log(f"qnnflow sweep: {len(jobs)} points of {sweep['build'].name} into {out} ({where})")
    results = _run_ray(jobs, ray_address) if ray_address else _run_local(jobs, sweep["workers"])
    rows = [{"point": i, **p["setting"], "dir": str(Path(job[2]).relative_to(out)), **r}
            for i, (p, job, r) in enumerate(zip(grid, jobs, results))]
    done = [r for r in rows if r["status"] == "ok" and "estimated_fps" in r]
    for row, front in zip(done, pareto_front(done) if done else []):
        row["pareto"] = bool(front)
    table = {"build": str(sweep["build"]), "grid": sweep["grid"], "estimates": "qnnflow's cost model (not synthesis)",
             "points": rows}
    write_json_atomic(out / "sweep.json", table)
    if done:
        write_bytes_atomic(out / "sweep.png", _plot(done, list(sweep["grid"])))
    return table


def format_table(table: dict) -> str:
    keys = list(table["grid"])
    lines = ["  ".join([*(f"{k:>16}" for k in keys), f"{'status':>7}", f"{'est. FPS':>10}", f"{'est. LUT':>9}",
                        f"{'BRAM18':>7}", f"{'accuracy':>8}", "pareto"])]
    for row in table["points"]:
        acc = row.get("accuracy")
        figures = [f"{row['estimated_fps']:>10,.0f}", f"{row['LUT']:>9,}", f"{row['BRAM18']:>7,}"] \
            if "estimated_fps" in row else [f"{'-':>10}", f"{'-':>9}", f"{'-':>7}"]
        lines.append("  ".join([*(f"{str(row[k]):>16}" for k in keys), f"{row['status']:>7}", *figures,
                                f"{'-' if acc is None else f'{100 * acc:.2f}%':>8}", "*" if row.get("pareto") else ""]))
    for row in table["points"]:
        if row["status"] != "ok":
            lines.append(f"point {row['point']} ({row['dir']}) failed: {row['error']}")
    return "\n".join(lines)


def _plot(rows: list[dict], keys: list[str]) -> bytes:
    
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row["LUT"], row["estimated_fps"], color="tab:red" if row["pareto"] else "white",
                   edgecolors="tab:red", zorder=3)
        ax.annotate(", ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys), (row["LUT"], row["estimated_fps"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("estimated LUT")
    ax.set_ylabel("estimated FPS")
    ax.set_title("sweep (red: Pareto front)")
    return png_bytes(fig)
