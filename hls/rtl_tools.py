"""The open RTL tools (Verilator, Yosys): where they are and which version, or one line saying how to
install them."""

from __future__ import annotations

import functools
import shutil
import subprocess

from qnnflow.base.errors import QnnflowError

INSTALL = {"verilator": "apt-get install verilator", "yosys": "apt-get install yosys"}


def tool(name: str, needed_by: str) -> str:
    """Path of ``name`` on PATH; a QnnflowError naming the step and the install command otherwise."""
    path = shutil.which(name)
    if path is None:
        how = INSTALL.get(name, f"install {name}")
        raise QnnflowError(f"{needed_by} needs {name}, which is not on PATH; install it ({how}) or choose backend: hls")
    return path


@functools.lru_cache(maxsize=None)
def tool_version(path: str) -> str:
    """The tool's version line: part of the cache keys of what it builds."""
    proc = subprocess.run([path, "-V" if path.endswith("yosys") else "--version"], capture_output=True, text=True)
    return (proc.stdout.strip().splitlines() or [path])[0]
