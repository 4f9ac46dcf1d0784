"""Atomic file writes and content hashes for build outputs.

Every output is written to a temporary file in the same directory and renamed into place,
so an interrupted build never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

TMP_PREFIX = ".tmp-"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_model_atomic(model: ModelWrapper, path: Path) -> str:
    """Save a model atomically; returns the sha256 of the bytes written."""
    data = model.model.SerializeToString()
    write_bytes_atomic(path, data)
    return sha256_bytes(data)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporaries left by an interrupted write (they are never valid outputs)."""
    for tmp in directory.rglob(TMP_PREFIX + "*"):
        tmp.unlink(missing_ok=True)
