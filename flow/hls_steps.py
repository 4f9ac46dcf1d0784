"""Build steps of the HLS back end (C++ generation, C++ simulation).

- ``hls_codegen`` writes ``OUT/hls/``: top.cpp, top.h, params/<layer>.h, testbench.cpp,
  include/ (the kernel library) and manifest.json (stream formats, kernels).
- ``cppsim`` compiles the same project with g++ (binaries cached under
  ``OUT/cppsim/bin/<hash>/``), runs it on the golden inputs and writes
  ``OUT/cppsim/result.json``; a mismatch fails the build naming the first differing layer.

Both return the model unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext

HLS_DIR = "hls"
CPPSIM_DIR = "cppsim"


def _remove_stale(directory: Path, keep: set[str]) -> None:
    """Delete generated files of an earlier run that this run does not produce (e.g. a removed layer)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*"), reverse=True):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and rel not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


@register_step("hls_codegen", config=("board",), produces=("hls",))
def hls_codegen_step(model, ctx: StepContext):
    """Generate the HLS C++ of the dataflow region: top function, per-layer parameter headers, testbench."""
    from qnnflow.hls.codegen.project import generate

    project = generate(model, ctx.board)
    _remove_stale(ctx.out_dir / HLS_DIR, set(project.files))
    for rel, data in project.files.items():
        ctx.write_artifact(f"{HLS_DIR}/{rel}", data, delivers="hls" if rel == "top.cpp" else None)
    fmt_in, fmt_out = project.input_format, project.output_format
    ctx.notes.append(f"{len(project.kernels)} kernels in {project.top}; input {fmt_in.words} x {fmt_in.axi_bits}-bit "
                     f"AXI words per image, output {fmt_out.words} x {fmt_out.axi_bits}-bit words")
    return model


@register_step("cppsim", config=("board",), produces=("cppsim",))
def cppsim_step(model, ctx: StepContext):
    """Compile the generated C++ with g++, run it on the golden inputs, and require a bit-exact match."""
    from qnnflow.hls.cppsim import cppsim

    golden = ctx.golden()
    base = ctx.out_dir / CPPSIM_DIR
    result = cppsim(model, golden.input, ctx.board, cache_dir=base / "bin", work_dir=base / "run")
    ctx.write_artifact(f"{CPPSIM_DIR}/result.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode(),
                       delivers="cppsim")
    if not result.bit_exact:
        raise QnnflowError(result.message())
    ctx.checked = f"C++ simulation bit-exact with the graph on {result.images} golden inputs"
    how = "cached binary" if result.cached else f"compiled in {result.compile_seconds:.1f} s"
    ctx.notes.append(f"C++ simulation (ap_int arithmetic, as Vitis HLS compiles it) bit-exact on {result.images} "
                     f"images ({how}, ran in {result.run_seconds:.2f} s)")
    return model
