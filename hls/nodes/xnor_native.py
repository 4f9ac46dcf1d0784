"""The native XNOR-popcount kernel (xnor_native.cpp): compiled with the C++ compiler once per
machine, cached, and loaded through ctypes.

numpy needs three passes over memory per 64-bit word pair (xor, popcount, accumulate) and
runs at about half of float32 BLAS; fused in one loop, and vectorised to AVX-512 VPOPCNTQ
by ``-march=native`` where the CPU has it, the same arithmetic runs several times faster
than BLAS (bench/xnor_gemm.py).  The library lands in ``$QNNFLOW_CACHE`` (default
``~/.cache/qnnflow``)/native/, named by the hash of the source, the compiler and the CPU's
flags, so a changed source or another machine gets its own build.

``kernel()`` returns the loaded function, or None when no compiler is available or the
build fails (the caller then uses the numpy path; a warning says why, once).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("xnor_native.cpp")
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c++14")
SYMBOL = "qnnflow_xnor_matches"


def cache_root() -> Path:
    return Path(os.environ.get("QNNFLOW_CACHE") or Path.home() / ".cache" / "qnnflow")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _build(cxx: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".partial-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", partial], capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "compiler failed")
        os.replace(partial, target)  # atomic: a concurrent process sees no library or a whole one
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@functools.lru_cache(maxsize=1)
def kernel():
    """``fn(x, w, rows, cols, words, k_bits, out)`` on raw pointers, or None (see the module doc)."""
    from qnnflow.base.errors import QnnflowError
    from qnnflow.base.toolchain import compiler, compiler_identity

    try:
        cxx = compiler()
        key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler_identity(cxx), " ".join(FLAGS),
                                        _cpu_flags()]).encode()).hexdigest()[:20]
        target = cache_root() / "native" / f"xnor-{key}.so"
        if not target.is_file():
            _build(cxx, target)
        fn = getattr(ctypes.CDLL(str(target)), SYMBOL)
    except (QnnflowError, OSError) as err:
        warnings.warn(f"native XNOR kernel unavailable ({err}); binary MVAUs run on the slower numpy path",
                      RuntimeWarning, stacklevel=2)
        return None
    pointer = ctypes.c_void_p
    fn.argtypes = [pointer, pointer, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32, pointer]
    fn.restype = None
    return fn
