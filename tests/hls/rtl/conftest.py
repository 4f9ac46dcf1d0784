import os
from pathlib import Path

import pytest

from qnnflow.hls.rtl_tools import tool


@pytest.fixture(scope="session")
def rtl_cache():
    """Verilated builds, kept across sessions: a build is keyed by the hash of everything it is made from
    (the design's files, the harness, Verilator's version and flags), so a stale one is never reused."""
    tool("verilator", "the RTL tests")
    root = Path(os.environ.get("QNNFLOW_TEST_CACHE", Path.home() / ".cache" / "qnnflow-tests"))
    return root / "rtlsim"
