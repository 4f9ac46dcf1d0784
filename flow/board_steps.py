"""Build steps from the generated accelerator (HLS or RTL) to the board: ``vivado``, ``driver``, ``deploy``.

- ``vivado`` writes ``OUT/vivado/`` (make_project.tcl, ooc_synth.tcl, run.sh, design.sha256, and
  hls_synth.tcl for the Vitis HLS IP, or rtl_sources.tcl and qnnflow_accel.v for the RTL top:
  ``backend: rtl`` and ``both`` put ``OUT/rtl``'s top in the block design, with no Vitis HLS).
  With the tools on PATH (``vitis_hls`` and ``vivado``, or ``vivado`` alone for the RTL) it runs
  ``run.sh bitstream`` (``run.sh ooc`` instead when ``outputs:`` lists ``ooc_synth`` and not
  ``bitstream``); without them it is skipped, saying what it needs and how to run the scripts
  later.  Reports that a run of the current scripts left (wherever it ran) are parsed into
  ``OUT/report/hls_synth.json`` (HLS), ``post_synth_resources.json`` and ``timing.json``.
- ``driver`` writes ``OUT/driver/`` (the PYNQ driver and its host program) and checks that
  its head, packing and tail reproduce the verified graph's outputs on the golden inputs.
- ``deploy`` writes ``OUT/deploy/<build>-<board>/`` and ``<build>-<board>.zip``.

Each returns the model unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.hls_steps import CPPSIM_DIR, _remove_stale
from qnnflow.flow.registry import register_step
from qnnflow.flow.rtl_steps import RTL_DIR, SYNTH_REPORT
from qnnflow.flow.runner import StepContext

VIVADO_DIR = "vivado"
DRIVER_DIR = "driver"
DEPLOY_DIR = "deploy"
TOOLS = ("vitis_hls", "vivado")
# The accelerator in the block design per ``backend:``.  With both back ends built, the RTL: rtlsim
# and Yosys measured that very design in this build, and it needs Vivado alone, not Vitis HLS too.
ACCELERATOR = {"hls": "hls", "rtl": "rtl", "both": "rtl"}
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


def _parse_reports(model, ctx: StepContext, accel: Accelerator, done: list[str]) -> None:
    """OUT/report/*.json from the reports of the finished stages, printed beside the estimates."""
    from qnnflow.hls.board import reports

    vdir = ctx.out_dir / VIVADO_DIR / "reports"
    cycles, est_res = _estimates(model, ctx.board)
    instances = accel.instances
    if accel.kind == "hls":
        hls = reports.hls_synth_report(vdir, accel.top, list(accel.instances), cycles)
        ctx.write_artifact("report/hls_synth.json", _dump(hls))
        ctx.log(reports.cycles_side_by_side(hls))
        instances = {k["node"]: k["instance"] for k in hls["kernels"] if k["instance"]}
    flow = "bitstream" if "bitstream" in done else "ooc"
    util_file, timing_file = (("utilization_hier.rpt", "timing_summary.rpt") if flow == "bitstream"
                              else ("ooc_utilization_hier.rpt", "ooc_timing_summary.rpt"))
    if flow not in done:
        return
    rows = reports.parse_utilization((vdir / util_file).read_text(), str(vdir / util_file))
    resources = reports.post_synth_resources(rows, accel.top, instances, str(vdir / util_file), est_res)
    resources["flow"] = "placed and routed" if flow == "bitstream" else "out-of-context synthesis"
    resources["accelerator_from"] = accel.kind
    timing = reports.parse_timing_summary((vdir / timing_file).read_text(), ctx.cfg.clock_ns, str(vdir / timing_file))
    ctx.write_artifact("report/post_synth_resources.json", _dump(resources),
                       delivers="ooc_synth" if flow == "ooc" else None)
    ctx.write_artifact("report/timing.json", _dump(timing))
    real = {node: resources["nodes"][node] for node in accel.instances if node in resources["nodes"]}
    if resources["accelerator"]:
        real["accelerator"] = resources["accelerator"]
    ctx.log(reports.side_by_side(est_res, real, f"resources, estimated and {resources['flow']}"))
    yosys_report = ctx.out_dir / SYNTH_REPORT
    if accel.kind == "rtl" and yosys_report.is_file():  # the synth step's counts of the same RTL
        yosys = json.loads(yosys_report.read_text())
        counted = {**yosys["nodes"], "accelerator": yosys["total"]}
        ctx.log(reports.side_by_side(counted, real, f"resources, Yosys and Vivado ({resources['flow']})",
                                     ("yosys", "vivado")))
    fmax = f"{timing['fmax_mhz']:.1f} MHz" if timing["fmax_mhz"] else "unknown"
    ctx.notes.append(f"{resources['flow']}: WNS {timing['wns_ns']} ns, achieved fmax {fmax} "
                     f"(target {1000 / ctx.cfg.clock_ns:.1f} MHz)")


@dataclass(frozen=True)
class Accelerator:
    """What the block design instantiates: the back end, its top, its sources, its nodes' instances."""

    kind: str  # "hls" or "rtl"
    top: str
    sources: dict  # the files of OUT/hls or OUT/rtl
    fifo_depths: tuple
    instances: dict  # node -> its instance under the top (the RTL's unit names; HLS: from csynth.xml)


def _accelerator(model, ctx: StepContext) -> Accelerator:
    kind = ACCELERATOR[ctx.cfg["backend"]]
    if kind == "hls":
        from qnnflow.hls.board.tcl import fifo_depths
        from qnnflow.hls.codegen.project import generate

        project = generate(model, ctx.board)
        return Accelerator(kind, project.top, project.files, fifo_depths(project.kernels),
                           {k.node: None for k in project.kernels})
    from qnnflow.hls.codegen.rtl import TOP, generate_rtl

    project = generate_rtl(model, ctx.board)
    rtl_dir = ctx.out_dir / RTL_DIR
    stale = [rel for rel, data in project.files.items()
             if not (rtl_dir / rel).is_file() or (rtl_dir / rel).read_bytes() != data]
    if stale:
        # The scripts read OUT/rtl when they run: it must hold this graph's RTL.
        raise QnnflowError(f"{rtl_dir / stale[0]} is missing or not this graph's; put the 'rtl_codegen' step "
                           f"before 'vivado' (backend: {ctx.cfg['backend']} puts the RTL top in the block design)")
    return Accelerator(kind, TOP, project.files, (), {u.node: u.ident for u in project.node_units()})


@register_step("vivado", config=("name", "board", "clock_ns", "outputs", "backend"),
               produces=("vivado", "bitstream", "ooc_synth"), tools=TOOLS)
def vivado_step(model, ctx: StepContext):
    """Vivado scripts (and Vitis HLS's for the HLS back end), run when the tools are installed, their reports parsed."""
    from qnnflow.hls.board.tcl import OWN_FILES, RUN_TOOLS, DesignParams, vivado_scripts

    accel = _accelerator(model, ctx)
    params = DesignParams(ctx.cfg["name"], ctx.board, ctx.cfg.clock_ns, accel.top, accel.fifo_depths, accel.kind)
    files = vivado_scripts(params, accel.sources)
    vdir = ctx.out_dir / VIVADO_DIR
    for other in OWN_FILES - set(files):  # the other back end's scripts, from an earlier build (not the runs' output)
        (vdir / other).unlink(missing_ok=True)
    for rel, data in files.items():
        path = ctx.write_artifact(f"{VIVADO_DIR}/{rel}", data, delivers="vivado" if rel == "run.sh" else None)
        if rel == "run.sh":
            path.chmod(0o755)
    digest = files["design.sha256"]
    todo = [mode for mode in _modes(ctx.cfg["outputs"]) if not _current(vdir, mode, digest)]
    missing = [tool for tool in RUN_TOOLS[accel.kind] if shutil.which(tool) is None]
    if todo and missing:
        needs = "Vitis HLS and Vivado" if accel.kind == "hls" else "Vivado (the RTL top needs no Vitis HLS)"
        ctx.skip(f"needs {needs} ({', '.join(missing)} not on PATH); run the scripts later with "
                 f"'bash {vdir / 'run.sh'} {todo[0]}' on a machine that has them, then rerun this build")
    else:
        for mode in todo:
            # The tools' output goes to the terminal as they run (an hour for a bitstream) and to logs/.
            proc = subprocess.run(["bash", str(vdir / "run.sh"), mode])
            if proc.returncode != 0:
                raise QnnflowError(f"run.sh {mode} failed with exit status {proc.returncode}; see {vdir / 'logs'}")
    stages = ("hls", "ooc", "bitstream") if accel.kind == "hls" else ("ooc", "bitstream")
    done = [stage for stage in stages if _current(vdir, stage, digest)]
    if "hls" in done or (accel.kind == "rtl" and done):  # the HLS IP's reports come first, from its own stage
        _parse_reports(model, ctx, accel, done)
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
