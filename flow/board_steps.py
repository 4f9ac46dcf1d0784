"""Build steps from the HLS project to the board: ``vivado``, ``driver``, ``deploy``.

- ``vivado`` writes ``OUT/vivado/`` (hls_synth.tcl, make_project.tcl, ooc_synth.tcl, run.sh,
  design.sha256).  With ``vitis_hls`` and ``vivado`` on PATH it runs ``run.sh bitstream``
  (``run.sh ooc`` instead when ``outputs:`` lists ``ooc_synth`` and not ``bitstream``);
  without them it is skipped, saying what it needs and how to run the scripts later.  Reports
  that a run of the current scripts left (wherever it ran) are parsed into
  ``OUT/report/hls_synth.json``, ``post_synth_resources.json`` and ``timing.json``.
- ``driver`` writes ``OUT/driver/`` (the PYNQ driver and its host program) and checks that
  its head, packing and tail reproduce the verified graph's outputs on the golden inputs.
- ``deploy`` writes ``OUT/deploy/<build>-<board>/`` and ``<build>-<board>.zip``.

Each returns the model unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.hls_steps import CPPSIM_DIR, _remove_stale
from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext

VIVADO_DIR = "vivado"
DRIVER_DIR = "driver"
DEPLOY_DIR = "deploy"
TOOLS = ("vitis_hls", "vivado")
BITFILE = "output/qnnflow.bit"


def _modes(outputs: list[str]) -> list[str]:
    """run.sh modes the build asks for: ``ooc`` for ooc_synth, ``bitstream`` unless only ooc_synth is wanted."""
    if "ooc_synth" in outputs:
        return ["ooc", "bitstream"] if "bitstream" in outputs else ["ooc"]
    return ["bitstream"]


def _current(vivado_dir: Path, stage: str, digest: bytes) -> bool:
    """Whether run.sh finished ``stage`` on the scripts and sources of this build (its recorded design.sha256)."""
    stamp = vivado_dir / "reports" / f"{stage}.sha256"
    return stamp.is_file() and stamp.read_bytes() == digest


def _dump(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def _estimates(model, board) -> tuple[dict, dict]:
    from qnnflow.hls import estimate

    layers = estimate.layer_estimates(model, board)
    return {layer.name: layer.cycles for layer in layers}, {layer.name: layer.resources for layer in layers}


def _parse_reports(model, ctx: StepContext, project, done: list[str]) -> None:
    """OUT/report/*.json from the reports of the finished stages, printed beside the estimates."""
    from qnnflow.hls.board import reports

    vdir = ctx.out_dir / VIVADO_DIR / "reports"
    nodes = [k.node for k in project.kernels]
    cycles, est_res = _estimates(model, ctx.board)
    hls = reports.hls_synth_report(vdir, project.top, nodes, cycles)
    ctx.write_artifact("report/hls_synth.json", _dump(hls))
    ctx.log(reports.cycles_side_by_side(hls))
    instances = {k["node"]: k["instance"] for k in hls["kernels"] if k["instance"]}
    flow = "bitstream" if "bitstream" in done else "ooc"
    util_file, timing_file = (("utilization_hier.rpt", "timing_summary.rpt") if flow == "bitstream"
                              else ("ooc_utilization_hier.rpt", "ooc_timing_summary.rpt"))
    if flow not in done:
        return
    rows = reports.parse_utilization((vdir / util_file).read_text(), str(vdir / util_file))
    resources = reports.post_synth_resources(rows, project.top, instances, str(vdir / util_file), est_res)
    resources["flow"] = "placed and routed" if flow == "bitstream" else "out-of-context synthesis"
    timing = reports.parse_timing_summary((vdir / timing_file).read_text(), ctx.cfg.clock_ns, str(vdir / timing_file))
    ctx.write_artifact("report/post_synth_resources.json", _dump(resources),
                       delivers="ooc_synth" if flow == "ooc" else None)
    ctx.write_artifact("report/timing.json", _dump(timing))
    real = {node: resources["nodes"][node] for node in nodes if node in resources["nodes"]}
    if resources["accelerator"]:
        real["accelerator"] = resources["accelerator"]
    ctx.log(reports.side_by_side(est_res, real, f"resources, estimated and {resources['flow']}"))
    fmax = f"{timing['fmax_mhz']:.1f} MHz" if timing["fmax_mhz"] else "unknown"
    ctx.notes.append(f"{resources['flow']}: WNS {timing['wns_ns']} ns, achieved fmax {fmax} "
                     f"(target {1000 / ctx.cfg.clock_ns:.1f} MHz)")


@register_step("vivado", config=("name", "board", "clock_ns", "outputs"), produces=("vivado", "bitstream", "ooc_synth"),
               tools=TOOLS)
def vivado_step(model, ctx: StepContext):
    """Vitis HLS and Vivado scripts (run when the tools are installed), their reports parsed."""
    from qnnflow.hls.board.tcl import DesignParams, fifo_depths, vivado_scripts
    from qnnflow.hls.codegen.project import generate

    project = generate(model, ctx.board)
    params = DesignParams(ctx.cfg["name"], ctx.board, ctx.cfg.clock_ns, project.top, fifo_depths(project.kernels))
    files = vivado_scripts(params, project.files)
    vdir = ctx.out_dir / VIVADO_DIR
    for rel, data in files.items():
        path = ctx.write_artifact(f"{VIVADO_DIR}/{rel}", data, delivers="vivado" if rel == "run.sh" else None)
        if rel == "run.sh":
            path.chmod(0o755)
    digest = files["design.sha256"]
    todo = [mode for mode in _modes(ctx.cfg["outputs"]) if not _current(vdir, mode, digest)]
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if todo and missing:
        ctx.skip(f"needs Vitis HLS and Vivado ({', '.join(missing)} not on PATH); run the scripts later with "
                 f"'bash {vdir / 'run.sh'} {todo[0]}' on a machine that has them, then rerun this build")
    else:
        for mode in todo:
            # The tools' output goes to the terminal as they run (an hour for a bitstream) and to logs/.
            proc = subprocess.run(["bash", str(vdir / "run.sh"), mode])
            if proc.returncode != 0:
                raise QnnflowError(f"run.sh {mode} failed with exit status {proc.returncode}; see {vdir / 'logs'}")
    done = [stage for stage in ("hls", "ooc", "bitstream") if _current(vdir, stage, digest)]
    if "hls" in done:
        _parse_reports(model, ctx, project, done)
    if "bitstream" in done:
        ctx.deliveries["bitstream"] = f"{VIVADO_DIR}/{BITFILE}"
        ctx.notes.append(f"bitstream: {vdir / BITFILE}")
    return model


@register_step("driver", config=("board", "top_k"), produces=("driver",))
def driver_step(model, ctx: StepContext):
    """The PYNQ driver: host head and tail, stream packing, DMA; checked on the golden inputs."""
    from qnnflow.hls.board.driver import DRIVER_FILE, check_host_program, driver_files, host_program
    from qnnflow.hls.codegen.project import generate

    project = generate(model, ctx.board)
    files = driver_files(model, project, ctx.cfg["top_k"])
    _remove_stale(ctx.out_dir / DRIVER_DIR, set(files))
    for rel, data in files.items():
        ctx.write_artifact(f"{DRIVER_DIR}/{rel}", data, delivers="driver" if rel == DRIVER_FILE else None)
    config, params = host_program(model, project, ctx.cfg["top_k"])
    ctx.notes.append(check_host_program(model, project, config, params, ctx.golden().input,
                                        ctx.out_dir / CPPSIM_DIR / "run"))
    ctx.checked = "the driver's host head, packing and tail reproduce the graph on the golden inputs"
    return model


def _built_bitstream(vivado_dir: Path) -> Path | None:
    """The vivado step's bitstream when run.sh built it from the current scripts, else None."""
    digest = vivado_dir / "design.sha256"
    built = vivado_dir / BITFILE
    if digest.is_file() and built.is_file() and _current(vivado_dir, "bitstream", digest.read_bytes()):
        return built
    return None


@register_step("deploy", config=("name", "board", "deploy"), produces=("deploy",))
def deploy_step(model, ctx: StepContext):
    """The deployment package (driver, bitstream when built, example, README) and its zip."""
    from qnnflow.hls.board.deploy import package_files, package_name, zip_package

    driver_dir = ctx.out_dir / DRIVER_DIR
    if not (driver_dir / "accel.json").is_file():
        raise QnnflowError(f"{driver_dir} has no driver; put the 'driver' step before 'deploy'")
    driver = {p.relative_to(driver_dir).as_posix(): p.read_bytes() for p in sorted(driver_dir.rglob("*"))
              if p.is_file()}
    bitfile = ctx.cfg["deploy"]["bitfile"] or _built_bitstream(ctx.out_dir / VIVADO_DIR)
    golden = (ctx.out_dir / ctx.golden_file).read_bytes()
    name = package_name(ctx.cfg["name"], ctx.board)
    files = package_files(ctx.cfg["name"], ctx.board, driver, golden, Path(bitfile) if bitfile else None)
    package_dir = ctx.out_dir / DEPLOY_DIR
    _remove_stale(package_dir, {f"{name}/{rel}" for rel in files} | {f"{name}.zip"})
    for rel, data in files.items():
        ctx.write_artifact(f"{DEPLOY_DIR}/{name}/{rel}", data)
    ctx.write_artifact(f"{DEPLOY_DIR}/{name}.zip", zip_package(files, name), delivers="deploy")
    ctx.notes.append(f"package {package_dir / (name + '.zip')}: " +
                     (f"bitstream from {bitfile}" if bitfile else "no bitstream (the vivado step has not built one)"))
    return model
