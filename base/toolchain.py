"""The C++ compiler that cppsim and the native XNOR kernel use: where it is and which it is."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from qnnflow.base.errors import QnnflowError


def compiler() -> str:
    """The C++ compiler: $CXX or g++ on PATH; QnnflowError saying how to install one otherwise."""
    name = os.environ.get("CXX", "g++")
    path = shutil.which(name)
    if path is None:
        raise QnnflowError(f"cppsim needs a C++ compiler, but '{name}' is not on PATH; install g++ "
                           f"(apt-get install g++) or set CXX")
    return path


@functools.lru_cache(maxsize=None)
def compiler_identity(path: str) -> str:
    """The compiler's first ``--version`` line: part of every cache key of compiled code."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise QnnflowError(f"cppsim cannot run the C++ compiler '{path}': {err}; install g++ (apt-get install g++)")
    return out.splitlines()[0] if out else path
