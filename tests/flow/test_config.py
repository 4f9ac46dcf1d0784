from pathlib import Path

import pytest

from qnnflow.flow.config import load_config
from qnnflow.base.errors import QnnflowError

BAD = sorted((Path(__file__).parent / "bad_builds").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: "):]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_build_gives_one_line_error_naming_file_and_field(path):
    with pytest.raises(QnnflowError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert expected_message(path) in message, message


@pytest.mark.parametrize("path", sorted((REPO / "builds").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_build_validates(path):
    cfg = load_config(path)
    assert cfg["model"] == path.stem
    assert cfg.board["resources"]["LUT"] > 0


def test_defaults_and_board_clock():
    cfg = load_config(REPO / "builds" / "tfc_w1a1.yaml", ["board=ultra96"])
    assert cfg.board["part"] == "xczu3eg-sbva484-1-e"
    assert cfg.clock_ns == 5.0
    assert cfg["golden"] == {"count": 8, "seed": 0}
    assert cfg.verifies("tidy")


def test_set_overrides_nested_fields_with_yaml_values():
    cfg = load_config(REPO / "builds" / "tfc_w1a1.yaml", ["golden.count=3", "clock_ns=4", "verify=[export]"])
    assert cfg["golden"]["count"] == 3
    assert cfg.clock_ns == 4.0
    assert cfg.verifies("export") and not cfg.verifies("tidy")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("golden.cout=3", "golden.cout (from --set): unknown key; did you mean 'golden.count'?"),
        ("board=zedboard", "board (from --set): unknown board 'zedboard'"),
        ("golden.count=many", "golden.count (from --set): expected an integer, got 'many'"),
        ("golden", "--set golden: expected key=value"),
        ("clock_ns=[1", "--set clock_ns=[1: value is not valid YAML"),
    ],
)
def test_bad_override_names_the_field(override, expected):
    with pytest.raises(QnnflowError) as info:
        load_config(REPO / "builds" / "tfc_w1a1.yaml", [override])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_build_file():
    with pytest.raises(QnnflowError, match="build file not found"):
        load_config("builds/nope.yaml")


def test_board_yaml_path_and_broken_board(tmp_path):
    good = tmp_path / "myboard.yaml"
    good.write_text((REPO / "builds/boards/pynq-z1.yaml").read_text().replace("clock_ns: 10.0", "clock_ns: 8.0"))
    cfg = load_config(REPO / "builds" / "tfc_w1a1.yaml", [f"board={good}"])
    assert cfg.clock_ns == 8.0 and cfg.board["id"] == "myboard"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: X\npart: p\n")
    with pytest.raises(QnnflowError, match=r"bad.yaml: board_part: missing"):
        load_config(REPO / "builds" / "tfc_w1a1.yaml", [f"board={bad}"])
