"""What a board's block design needs, read from the ``vivado:`` section of its YAML.

Every field is required, so a board file names its PS, the PS's preset, the fabric clock
and reset, the master port the DMA's registers sit behind, the HP port the DMA moves data
through, and the address of those registers.  ``block_design(board)`` returns them checked,
or raises QnnflowError naming the field (``vivado.hp_port.width: ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qnnflow.base.errors import QnnflowError

SECTION = "vivado"
HP_WIDTHS = (32, 64, 128)  # the widths a Zynq-7000 (32/64) or Zynq UltraScale+ (32/64/128) HP port takes
REGISTER_SPACE = 0x10000  # the DMA's AXI-Lite registers: one 64 KiB window
# Values become Tcl words in braces: no braces, backslashes, brackets, dollars or newlines.
TCL_SAFE = re.compile(r"[^{}\\\[\]$\n]*")
_VLN = re.compile(r"[\w.-]+:[\w.-]+:[\w.-]+")  # vendor:library:name, the version left to the installed tools


@dataclass(frozen=True)
class Port:
    name: str
    enable: str  # the PS CONFIG property that enables it
    clock: str  # its clock pin on the PS


@dataclass(frozen=True)
class BlockDesign:
    ps_ip: str
    preset_rule: str
    preset_config: str
    clock_port: str
    clock_config: str
    clock_actual_config: str
    reset_port: str
    master: Port
    hp: Port
    hp_width_config: str
    hp_width: int
    ps_config: dict
    address_base: int


def _field(section: dict, key: str, path: str, types=str):
    value = section.get(key)
    if value is None:
        raise QnnflowError(f"{path}{key}: missing; see builds/boards/pynq-z1.yaml or ultra96.yaml")
    if isinstance(value, bool) or not isinstance(value, types):
        raise QnnflowError(f"{path}{key}: expected {getattr(types, '__name__', 'a value')}, got {value!r}")
    if isinstance(value, str) and (not value or not TCL_SAFE.fullmatch(value)):
        raise QnnflowError(f"{path}{key}: {value!r} must be non-empty, without braces, brackets, $ or backslashes")
    return value


def _port(section: dict, key: str, path: str) -> tuple[Port, dict]:
    port = _field(section, key, path, dict)
    sub = f"{path}{key}."
    return Port(_field(port, "name", sub), _field(port, "enable", sub), _field(port, "clock", sub)), port


def block_design(board: dict) -> BlockDesign:
    """The checked ``vivado:`` section of ``board``; QnnflowError naming the first bad field."""
    path = f"{SECTION}."
    section = board.get(SECTION)
    if not isinstance(section, dict):
        raise QnnflowError(f"{SECTION}: missing (the block design: PS IP and preset, clock, reset, master and HP "
                           f"ports, address base); see builds/boards/pynq-z1.yaml")
    ps_ip = _field(section, "ps_ip", path)
    if not _VLN.fullmatch(ps_ip):
        raise QnnflowError(f"{path}ps_ip: {ps_ip!r} must be vendor:library:name, e.g. xilinx.com:ip:processing_system7")
    if board.get("ps") is not None and ps_ip.split(":")[2] != board["ps"]:
        raise QnnflowError(f"{path}ps_ip: {ps_ip} is not the board's ps ({board['ps']})")
    preset = _field(section, "ps_preset", path, dict)
    master, _ = _port(section, "master_port", path)
    hp, hp_section = _port(section, "hp_port", path)
    hp_width = _field(hp_section, "width", f"{path}hp_port.", int)
    if hp_width not in HP_WIDTHS:
        raise QnnflowError(f"{path}hp_port.width: {hp_width} is not an HP port width ({', '.join(map(str, HP_WIDTHS))})")
    axi = board.get("axi_width")
    if isinstance(axi, int) and axi > hp_width:
        # AXI DMA (PG021): a stream is at most as wide as the memory-mapped side.
        raise QnnflowError(f"{path}hp_port.width: {hp_width} is narrower than the board's axi_width {axi}; the DMA's "
                           f"streams cannot be wider than its memory side")
    ps_config = _field(section, "ps_config", path, dict)
    for key, value in ps_config.items():
        if not TCL_SAFE.fullmatch(str(key)) or not TCL_SAFE.fullmatch(str(value)):
            raise QnnflowError(f"{path}ps_config.{key}: {value!r} is not a plain CONFIG value")
    base = _field(section, "address_base", path, int)
    if base < 0 or base % REGISTER_SPACE:
        raise QnnflowError(f"{path}address_base: {base:#x} must be a non-negative multiple of {REGISTER_SPACE:#x}")
    return BlockDesign(
        ps_ip=ps_ip,
        preset_rule=_field(preset, "rule", f"{path}ps_preset."),
        preset_config=_field(preset, "config", f"{path}ps_preset."),
        clock_port=_field(section, "clock_port", path),
        clock_config=_field(section, "clock_config", path),
        clock_actual_config=_field(section, "clock_actual_config", path),
        reset_port=_field(section, "reset_port", path),
        master=master,
        hp=hp,
        hp_width_config=_field(hp_section, "width_config", f"{path}hp_port."),
        hp_width=hp_width,
        ps_config=dict(ps_config),
        address_base=base,
    )


def block_design_problem(board: dict) -> str | None:
    """Why the board's ``vivado:`` section is unusable, or None (for the board loader's one-line errors)."""
    try:
        block_design(board)
    except QnnflowError as err:
        return str(err)
    return None
