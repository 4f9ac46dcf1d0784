"""Reading build and board YAML strictly: text only, no duplicate keys, YAML 1.2 numbers.

PyYAML follows YAML 1.1, where ``1e1`` and ``5e0`` are strings (its float pattern needs a
dot and a signed exponent) and a repeated key silently replaces the first. A build file is
short and hand-written, so both are mistakes worth one clear line instead.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path

import yaml

from qnnflow.base.errors import QnnflowError

# Floats YAML 1.1 misses: an exponent without a dot (1e1) or with an unsigned exponent (1.5e3).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 exponent floats as numbers."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader itself reports an unhashable key
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# Copy the resolver table (its per-character lists are shared with SafeLoader) before adding.
StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, line: int, first_line: int):
        super().__init__(f"line {line}: key '{key}' appears twice (first on line {first_line}); keep one")


def parse_yaml(text: str):
    """Parse YAML text strictly (duplicate keys are a yaml.YAMLError)."""
    return yaml.load(text, Loader=StrictLoader)


def load_yaml_file(path: Path, if_missing: str):
    """The parsed content of a YAML file; a one-line QnnflowError naming the file otherwise.

    ``if_missing`` is the message (after the path) for a file that does not exist.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise QnnflowError(f"{path}: {if_missing}") from None
    except IsADirectoryError:
        raise QnnflowError(f"{path}: is a directory, not a YAML file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise QnnflowError(
            f"{path}: not a YAML text file (byte 0x{data[err.start]:02x} at offset {err.start} is not UTF-8 text)"
        ) from None
    try:
        return parse_yaml(text)
    except DuplicateKey as err:
        raise QnnflowError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise QnnflowError(f"{path}: not valid YAML: {one_line(err)}") from None


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())
