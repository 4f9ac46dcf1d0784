from pathlib import Path

import pytest

from qnnflow.flow.config import load_config
from qnnflow.base.errors import QnnflowError

BAD = sorted((Path(__file__).parent / "bad_builds").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: "):].replace("{here}", str(path.parent))


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
    assert cfg["golden"] == {"count": 8, "seed": 0, "source": "auto"}
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


def test_binary_garbage_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "garbage.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(QnnflowError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: not a YAML text file")


@pytest.mark.parametrize("text, value", [("1e1", 10.0), ("5e0", 5.0), ("1.5e1", 15.0), ("2.5E+1", 25.0), ("8", 8)])
def test_numbers_in_exponent_form_are_numbers(tfc_build, text, value):
    cfg = load_config(tfc_build(f"clock_ns: {text}\n"))
    assert cfg["clock_ns"] == value and type(cfg["clock_ns"]) is type(value)
    assert load_config(tfc_build(), [f"clock_ns={text}", "fold.lut=5e-1"])["fold"]["lut"] == 0.5


def test_exponent_floats_do_not_change_what_plain_yaml_reads():
    import yaml

    assert yaml.safe_load("x: 1e1")["x"] == "1e1"  # the strict loader's resolver table is its own


@pytest.mark.parametrize(
    "board, ok, refused", [("pynq-z1", [2.16, 213], [2.1, 214]), ("ultra96", [1.5, 160], [1.4, 161])]
)
def test_clock_must_be_within_the_parts_range(tfc_build, board, ok, refused):
    for clock in ok:
        assert load_config(tfc_build(), [f"board={board}", f"clock_ns={clock}"]).clock_ns == clock
    for clock in refused:
        refusal = r"clock_ns \(from --set\): .* is outside the .*'s clock range, [0-9.]+ to [0-9.]+ ns"
        with pytest.raises(QnnflowError, match=refusal):
            load_config(tfc_build(), [f"board={board}", f"clock_ns={clock}"])


def test_board_yaml_needs_a_valid_clock_range(tmp_path, tfc_build):
    board = (REPO / "builds/boards/pynq-z1.yaml").read_text()
    no_range = tmp_path / "no_range.yaml"
    no_range.write_text(board.replace("clock_range_ns:", "old_range:"))
    with pytest.raises(QnnflowError, match="no_range.yaml: clock_range_ns: missing"):
        load_config(tfc_build(), [f"board={no_range}"])
    slow_default = tmp_path / "slow_default.yaml"
    slow_default.write_text(board.replace("clock_ns: 10.0", "clock_ns: 500.0"))
    with pytest.raises(QnnflowError, match="slow_default.yaml: clock_ns: 500 ns .* outside"):
        load_config(tfc_build(), [f"board={slow_default}"])


def test_relative_paths_resolve_against_the_build_files_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "boards").mkdir(parents=True)
    (project / "boards" / "myboard.yaml").write_text((REPO / "builds/boards/pynq-z1.yaml").read_text())
    (project / "net.onnx").write_bytes(b"")
    (project / "fold.json").write_text("{}")
    (project / "ckpt.pt").write_bytes(b"")
    (project / "build.yaml").write_text(
        "model: net.onnx\nweights: ckpt.pt\nboard: boards/myboard.yaml\nfold: {file: fold.json}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "project" / "build.yaml")
    assert cfg["model"] == str(project / "net.onnx") and cfg["weights"] == str(project / "ckpt.pt")
    assert cfg["fold"]["file"] == str(project / "fold.json")
    assert cfg.board["id"] == "myboard" and cfg["board"] == str(project / "boards" / "myboard.yaml")
    # A path typed on the command line is relative to where it is typed.
    (elsewhere / "other.json").write_text("{}")
    from_command_line = load_config(project / "build.yaml", ["fold.file=other.json"])
    assert from_command_line["fold"]["file"] == str(elsewhere / "other.json")
    with pytest.raises(QnnflowError, match=f"fold.file \\(from --set\\): file '{elsewhere}/fold.json' not found"):
        load_config(project / "build.yaml", ["fold.file=fold.json"])
