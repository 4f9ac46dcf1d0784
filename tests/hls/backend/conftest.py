import pytest

from qnnflow.hls.cppsim import ap_include_dir, compiler


@pytest.fixture(scope="session")
def cppsim_cache(tmp_path_factory):
    """One binary cache for the whole session (identical projects compile once)."""
    compiler()
    ap_include_dir()
    return tmp_path_factory.mktemp("cppsim-cache")
