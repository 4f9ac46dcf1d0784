"""C++ simulation (cppsim): compile the generated HLS project with g++ and check it bit for bit.

``cppsim(model, inputs, cache_dir)`` generates the project of ``model``'s hardware region
(hls/codegen), compiles ``top.cpp`` + ``testbench.cpp`` with ``g++ -O2 -std=c++14``,
pushes the inputs through the host head (Python) into the testbench as a stream file
(base/streams.py), and compares the testbench's output words with the Python execution of
the same hardware region.  On a mismatch it rebuilds the project with stream taps
(``QNNFLOW_TAP_STREAMS``) and names the first layer whose C++ output differs.

Binaries are cached under ``cache_dir/<hash>/`` (the binary ``testbench`` and the sources
it was compiled from, ``hls/``) by the hash of every source file, the flags, the compiler
and the ap_int headers used (their directory and the bytes of its ap_*.h, hls_stream*.h,
hls_half*.h and etc/ files): an unchanged project never recompiles, and editing or
upgrading the headers in place does.

Headers: ``$XILINX_HLS/include`` when XILINX_HLS is set, else the copy of Xilinx's
ap_int.h / hls_stream.h in the hls4ml wheel (``hls4ml/templates/vivado/ap_types``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.base.toolchain import compiler, compiler_identity
from qnnflow.hls.codegen.project import HlsProject, generate
from qnnflow.base.values import to_carrier, value_problem
from qnnflow.hls.partition import Region, find_partition, host_graph

CXX_STD = "-std=c++14"
DEFAULT_OPT = "-O2"
HLS4ML_AP_TYPES = ("templates", "vivado", "ap_types")
# The headers of the include directory that the generated C++ can reach (ap_int.h, hls_stream.h and
# what they include): the cache keys hash their bytes.  Not the whole directory: $XILINX_HLS/include
# holds thousands of unrelated headers.
AP_HEADER_GLOBS = ("ap_*.h", "hls_stream*.h", "hls_half*.h", "etc/**/*")
STREAM_WARNING = "WARNING: Hls::stream"
# Directories being built (renamed into place when complete).  Not the runner's ".tmp-" prefix:
# the runner deletes stale ".tmp-*" files, not directories.
PARTIAL_PREFIX = "partial-"


# ----- toolchain -----------------------------------------------------------------------------------


def ap_include_dir() -> Path:
    """Directory holding ap_int.h and hls_stream.h: $XILINX_HLS/include, else the hls4ml wheel's copy."""
    xilinx = os.environ.get("XILINX_HLS")
    if xilinx:
        path = Path(xilinx) / "include"
        if not (path / "ap_int.h").is_file():
            raise QnnflowError(f"XILINX_HLS={xilinx} but {path}/ap_int.h does not exist; fix XILINX_HLS or unset it "
                               f"to use the hls4ml headers")
        return path
    spec = importlib.util.find_spec("hls4ml")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location).joinpath(*HLS4ML_AP_TYPES)
        if (path / "ap_int.h").is_file() and (path / "hls_stream.h").is_file():
            return path
    raise QnnflowError("cppsim needs Xilinx's ap_int.h and hls_stream.h: pip install hls4ml==1.3.0 "
                       "(or set XILINX_HLS to a Vitis HLS installation)")


_HEADER_DIGESTS: dict[tuple, str] = {}


def ap_headers_digest(ap_dir: Path) -> str:
    """sha256 of the relevant headers of ``ap_dir`` (AP_HEADER_GLOBS), names and bytes.

    Computed once per process for each state of the files (names, sizes, modification
    times): about 1 ms for the hls4ml headers; later calls cost a stat per file.
    """
    ap_dir = Path(ap_dir)
    files = sorted({p for pattern in AP_HEADER_GLOBS for p in ap_dir.glob(pattern) if p.is_file()})
    stats = tuple((p.relative_to(ap_dir).as_posix(), st.st_size, st.st_mtime_ns)
                  for p, st in ((p, p.stat()) for p in files))
    key = (str(ap_dir), stats)
    digest = _HEADER_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        for path, (rel, _, _) in zip(files, stats):
            h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        digest = _HEADER_DIGESTS[key] = h.hexdigest()
    return digest


# ----- compilation -----------------------------------------------------------------------------------


@dataclass
class Binary:
    path: Path
    compile_seconds: float  # time spent compiling in this call (0 when cached)
    cached: bool


def _toolchain_hash(cxx: str, flags: list[str], ap_dir: Path):
    """A sha256 object fed with what, besides the sources, decides a compiled binary."""
    h = hashlib.sha256()
    for part in (compiler_identity(cxx), cxx, str(ap_dir), ap_headers_digest(ap_dir), " ".join(flags)):
        h.update(part.encode() + b"\0")
    return h


def _source_hash(project: HlsProject, flags: list[str], cxx: str, ap_dir: Path) -> str:
    h = _toolchain_hash(cxx, flags, ap_dir)
    for rel, data in project.files.items():
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:20]


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error" in line:
            return line.strip()
    lines = [line for line in log.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


_PCH_LOCK = threading.Lock()


def _precompiled_header(project: HlsProject, cxx: str, flags: list[str], ap_dir: Path, cache_dir: Path) -> Path:
    """``streams.hpp`` precompiled (with ap_int.h and hls_stream.h) under cache_dir/pch/<hash>/, built once.

    It is about 80 MB and takes 2 s to build, then saves about 1 s per compiled project:
    worth it when one cache compiles many projects (tests, sweeps).
    """
    headers = {rel: data for rel, data in project.files.items() if rel == "include/streams.hpp"}
    h = _toolchain_hash(cxx, flags, ap_dir)
    for rel, data in headers.items():
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    final = cache_dir / "pch" / h.hexdigest()[:20]
    with _PCH_LOCK:
        if not (final / "streams.hpp.gch").is_file():
            final.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}pch-", dir=final.parent))
            try:
                for rel, data in headers.items():
                    (work / Path(rel).name).write_bytes(data)
                cmd = [cxx, *flags, "-I", str(work), "-I", str(ap_dir), "-x", "c++-header", str(work / "streams.hpp"),
                       "-o", str(work / "streams.hpp.gch")]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise QnnflowError(f"{Path(cxx).name} failed precompiling streams.hpp: {_first_error(proc.stderr)}")
                os.replace(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return final / "streams.hpp"


def compile_project(project: HlsProject, cache_dir: Path, opt: str = DEFAULT_OPT, taps: bool = False,
                    precompiled_header: bool = False, native: bool = False) -> Binary:
    """The testbench binary of ``project``, from ``cache_dir`` or compiled there (top and testbench in parallel).

    ``taps`` builds the layer-mode binary (QNNFLOW_TAP_STREAMS); ``precompiled_header``
    compiles the kernel library once per cache (see ``_precompiled_header``); ``native`` compiles
    the native-integer fast path of C simulation (QNNFLOW_NATIVE, streams.hpp) instead of the ap_int
    code that Vitis HLS compiles.
    """
    cxx, ap_dir = compiler(), ap_include_dir()
    flags = [opt, CXX_STD] + (["-DQNNFLOW_NATIVE"] if native else []) + (["-DQNNFLOW_TAP_STREAMS"] if taps else [])
    key = _source_hash(project, flags, cxx, ap_dir)
    cache_dir = Path(cache_dir).resolve()  # g++ runs in the work directory: paths must not be relative
    final = cache_dir / key
    binary = final / "testbench"
    if binary.is_file():
        return Binary(binary, 0.0, True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pch = ["-include", str(_precompiled_header(project, cxx, flags, ap_dir, cache_dir))] if precompiled_header else []
    work = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{key}-", dir=cache_dir))
    try:
        src = work / "hls"
        project.write(src)
        includes = ["-I", str(src), "-I", str(src / "include"), "-I", str(ap_dir)]

        def run(cmd: list[str], what: str) -> None:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
            if proc.returncode != 0:
                kept = cache_dir / f"failed-{key}.log"
                kept.write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
                raise QnnflowError(f"{Path(cxx).name} failed on {what}: {_first_error(proc.stderr)} (full log: {kept})")

        jobs = [([cxx, *flags, *pch, *includes, "-c", str(src / f"{unit}.cpp"), "-o", str(work / f"{unit}.o")],
                 f"{unit}.cpp") for unit in ("top", "testbench")]
        with ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(run, *job) for job in jobs]:
                future.result()
        run([cxx, str(work / "top.o"), str(work / "testbench.o"), "-o", str(work / "testbench")], "linking")
        seconds = time.perf_counter() - t0
        for unit in ("top", "testbench"):
            (work / f"{unit}.o").unlink()
        try:
            os.replace(work, final)
        except OSError:  # another process compiled the same sources meanwhile
            if not binary.is_file():
                raise
        return Binary(binary, seconds, False)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


# ----- running ---------------------------------------------------------------------------------------


def _stream_problem(stdout: str) -> str | None:
    for line in stdout.splitlines():
        if STREAM_WARNING in line:
            return line.replace("WARNING: ", "").strip()
    return None


def run_testbench(binary: Path, project: HlsProject, x: np.ndarray, work_dir: Path,
                  tap_dir: Path | None = None) -> tuple[np.ndarray, float]:
    """Outputs (N, *output shape) int64 of the testbench on region inputs ``x`` (N, ...), and the run time."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    in_path, out_path = work_dir / "input.bin", work_dir / "output.bin"
    in_path.write_bytes(project.input_format.pack(x).tobytes())
    env = dict(os.environ)
    if tap_dir is not None:
        tap_dir.mkdir(parents=True, exist_ok=True)
        for old in tap_dir.glob("*.bin"):
            old.unlink()
        env["QNNFLOW_TAP_DIR"] = str(tap_dir)
    t0 = time.perf_counter()
    proc = subprocess.run([str(binary), str(in_path), str(out_path)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise QnnflowError(f"C++ simulation failed: {detail}")
    problem = _stream_problem(proc.stdout)
    if problem:
        raise QnnflowError(f"C++ simulation: {problem} (a kernel reads or writes the wrong number of words; "
                           f"the stream is named after the kernel writing it)")
    return project.output_format.unpack(out_path.read_bytes()), seconds


# ----- the Python side -------------------------------------------------------------------------------


def region_input(model: ModelWrapper, region: Region, inputs: np.ndarray) -> np.ndarray:
    """The integer tensor entering the hardware region for model inputs ``inputs``: the host head run in Python."""
    from qnnflow.base.execute import execute_batch

    inputs = np.asarray(inputs)
    if region.input == model.graph.input[0].name:
        shape = model.get_tensor_shape(region.input)
        return inputs.reshape(len(inputs), *shape[1:])
    head = host_graph(model, find_partition(model).head, output_name=region.input)
    return execute_batch(head, inputs)


def execute_region(model: ModelWrapper, region: Region, x: np.ndarray, keep: bool = False,
                   chunk: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The hardware region in Python on region inputs ``x``: (output, {node name: output} when ``keep``)."""
    finals, kept = [], {}
    for start in range(0, len(x), chunk):
        ctx = {region.input: to_carrier(np.asarray(x[start : start + chunk]).astype(np.int64))}
        for node in region.nodes:
            getCustomOp(node).execute_node(ctx, model.graph)
            if keep:
                kept.setdefault(node.name, []).append(ctx[node.output[0]])
        finals.append(ctx[region.output])
    as_int = lambda arrays: np.concatenate(arrays).astype(np.int64)  # noqa: E731
    return as_int(finals), {name: as_int(parts) for name, parts in kept.items()}


# ----- cppsim ----------------------------------------------------------------------------------------


@dataclass
class CppsimResult:
    bit_exact: bool
    images: int
    compile_seconds: float
    run_seconds: float
    python_seconds: float
    cached: bool
    binary: str
    native: bool  # compiled with the native-integer fast path instead of ap_int
    mismatch: dict | None = None  # {"image", "node", "op_type", "words_differing"} of the first differing layer

    def to_dict(self) -> dict:
        return {
            "bit_exact": self.bit_exact,
            "images": self.images,
            "compile_seconds": round(self.compile_seconds, 3),
            "run_seconds": round(self.run_seconds, 4),
            "python_seconds": round(self.python_seconds, 4),
            "cached": self.cached,
            "binary": self.binary,
            "arithmetic": "native" if self.native else "ap_int",
            "mismatch": self.mismatch,
        }

    def message(self) -> str:
        m = self.mismatch or {}
        where = f"first differing layer: '{m.get('node')}' ({m.get('op_type')})" if m.get("node") else \
            "every layer's stream matches, so the difference is in the output port adapter"
        return (f"C++ simulation output differs from the Python execution of the hardware region on image "
                f"{m.get('image')}; {where}")


def first_differing_layer(project: HlsProject, model: ModelWrapper, x: np.ndarray, cache_dir: Path,
                          work_dir: Path, opt: str = DEFAULT_OPT, precompiled_header: bool = False,
                          native: bool = False) -> dict | None:
    """Run the tapped build on ``x`` and return the first kernel whose output stream differs from Python's."""
    binary = compile_project(project, cache_dir, opt, taps=True, precompiled_header=precompiled_header,
                             native=native)
    tap_dir = Path(work_dir) / "taps"
    run_testbench(binary.path, project, x, Path(work_dir) / "layers", tap_dir=tap_dir)
    _, expected = execute_region(model, project.region, x, keep=True)
    return compare_taps([(k.ident, k.node, k.out_fmt) for k in project.kernels], project.region, expected, len(x),
                        tap_dir)


def compare_taps(streams, region: Region, expected: dict[str, np.ndarray], images: int, tap_dir: Path) -> dict | None:
    """The first of ``streams`` ((ident, node, StreamFormat) in region order) whose words in
    ``tap_dir/<ident>.bin`` differ from the node's Python output ``expected[node]`` on ``images`` images."""
    nodes = {n.name: n for n in region.nodes}
    for ident, node, fmt in streams:
        tap = Path(tap_dir) / f"{ident}.bin"
        want = expected[node].reshape(images, -1)
        got = fmt.unpack(tap.read_bytes()).reshape(-1, fmt.elements) if tap.is_file() else None
        if got is None or got.shape != want.shape or not np.array_equal(got, want):
            differing = None if got is None or got.shape != want.shape else \
                int((got != want).reshape(images, fmt.words, fmt.lanes).any(axis=-1).sum())
            return {"node": node, "op_type": nodes[node].op_type, "ident": ident, "words_differing": differing}
    return None


def cppsim(model: ModelWrapper, inputs: np.ndarray, board: dict, cache_dir: Path, work_dir: Path | None = None,
           opt: str = DEFAULT_OPT, project: HlsProject | None = None, layers: bool = False,
           precompiled_header: bool = False, native: bool = False) -> CppsimResult:
    """Simulate the generated C++ of ``model`` for ``board`` on model inputs ``inputs`` (N, ...) and compare
    with Python, bit for bit.

    The inputs go through the host head first.  On a mismatch (or always, with ``layers``)
    the result names the first layer whose output stream differs.  By default the ap_int code
    that Vitis HLS compiles runs; ``native`` takes the faster native-integer path.
    """
    project = project or generate(model, board)
    region = project.region
    x = region_input(model, region, inputs)
    problem = value_problem(x, DataType[project.input_format.datatype])
    if problem:
        raise QnnflowError(f"the tensor '{region.input}' entering the hardware region {problem}; "
                           f"the host head must produce {project.input_format.datatype} integers")
    binary = compile_project(project, cache_dir, opt, precompiled_header=precompiled_header, native=native)
    own_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="qnnflow-cppsim-")) if own_work else Path(work_dir)
    try:
        got, run_seconds = run_testbench(binary.path, project, x, work)
        t0 = time.perf_counter()
        want, _ = execute_region(model, region, x)
        python_seconds = time.perf_counter() - t0
        want = want.reshape(got.shape) if want.size == got.size else want
        equal = want.shape == got.shape and np.array_equal(got, want)
        result = CppsimResult(equal, len(x), binary.compile_seconds, run_seconds, python_seconds, binary.cached,
                              str(binary.path), native)
        if not equal or layers:
            bad = [0] if want.shape != got.shape else \
                [i for i in range(len(x)) if not np.array_equal(got[i], want[i])] or [0]
            image = bad[0]
            layer = first_differing_layer(project, model, x[image : image + 1], cache_dir, work, opt,
                                          precompiled_header, native)
            if not equal or layer is not None:
                result.mismatch = {"image": image, **(layer or {})}
        return result
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
