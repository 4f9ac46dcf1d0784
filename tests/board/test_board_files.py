"""Board files carry the block design's fields; a missing or bad one fails naming it (exit 2)."""

import pytest
import yaml

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import BOARD_DIR, known_boards, load_board
from qnnflow.flow.cli import main
from qnnflow.hls.board.spec import block_design

from tests.flow.conftest import REPO

FIELDS = ["ps_ip", "ps_preset", "clock_port", "clock_config", "clock_actual_config", "reset_port", "master_port",
          "hp_port", "ps_config", "address_base"]


def test_pynq_z2_is_a_board():
    board = load_board("pynq-z2")
    assert (board["part"], board["board_part"]) == ("xc7z020clg400-1", "tul.com.tw:pynq-z2:part0:1.0")
    assert "pynq-z2" in known_boards()
    assert block_design(board).ps_ip == "xilinx.com:ip:processing_system7"


def _write_board(tmp_path, edit):
    raw = yaml.safe_load((BOARD_DIR / "ultra96.yaml").read_text())
    edit(raw)
    path = tmp_path / "myboard.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("field", FIELDS)
def test_a_missing_block_design_field_is_named(field, tmp_path):
    path = _write_board(tmp_path, lambda raw: raw["vivado"].pop(field))
    with pytest.raises(QnnflowError, match=rf"myboard.yaml: vivado.{field}: missing"):
        load_board(str(path))


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw.pop("vivado"), r"vivado: missing \(the block design"),
    (lambda raw: raw["vivado"]["ps_preset"].pop("rule"), r"vivado.ps_preset.rule: missing"),
    (lambda raw: raw["vivado"]["hp_port"].pop("width"), r"vivado.hp_port.width: missing"),
    (lambda raw: raw["vivado"]["hp_port"].update(width=48), r"vivado.hp_port.width: 48 is not an HP port width"),
    (lambda raw: raw["vivado"]["hp_port"].update(width=64), r"vivado.hp_port.width: 64 is narrower than .* 128"),
    (lambda raw: raw["vivado"].update(ps_ip="xilinx.com:ip:processing_system7"), r"is not the board's ps"),
    (lambda raw: raw["vivado"].update(address_base=0x1234), r"vivado.address_base: 0x1234 must be"),
    (lambda raw: raw["vivado"].update(clock_port="pl_clk0 [exec rm -rf /]"), r"vivado.clock_port: .* without braces"),
])
def test_bad_block_design_fields(edit, message, tmp_path):
    with pytest.raises(QnnflowError, match=message):
        load_board(str(_write_board(tmp_path, edit)))


def test_board_without_ps_definition_exits_2_naming_the_field(tmp_path, capsys):
    path = _write_board(tmp_path, lambda raw: raw["vivado"].pop("ps_ip"))
    code = main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "vivado.ps_ip: missing" in err[0]
    assert not (tmp_path / "o").exists()
