"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path

from inrbench.errors import StorageError


def safe_name(name: str) -> str:
    """``name`` as one folder name: every run of characters other than letters, digits,
    ``_ . -`` becomes ``_`` (a ``module:Class`` model names its folder ``module_Class``), and
    a name of dots only (``..``) or none becomes underscores, so that the result is always
    one folder inside its parent: no separator, ``..`` or absolute path survives."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))
    return name if name.strip(".") else "_" * max(1, len(name))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: os.PathLike, payload: bytes) -> None:
    """``payload`` to a temporary file beside ``path``, synced, then renamed over it. A write
    that fails (full disk, quota, read-only folder) leaves the old file as it was and raises
    a StorageError naming the folder and the file."""
    atomic_write_with(path, lambda f: f.write(payload), len(payload))


def atomic_write_with(path: os.PathLike, write, nbytes: int | None = None) -> None:
    """As :func:`atomic_write_bytes`, ``write(f)`` filling the open temporary file: a large
    object (a checkpoint) streams to disk instead of being built in memory first."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StorageError(write_failure(path, e, nbytes)) from None
        raise


def write_failure(path: Path, error: OSError, nbytes: int | None = None) -> str:
    """``cannot write NAME (N bytes) in FOLDER: reason (errno)``, and what to do."""
    reason = error.strerror or str(error) or type(error).__name__
    code = f" [{errno.errorcode.get(error.errno, error.errno)}]" if error.errno else ""
    size = f" ({nbytes:,} bytes)" if nbytes is not None else ""
    return (f"cannot write {path.name}{size} in {path.parent}: {reason}{code}; free space "
            f"there (or choose another folder) and try again")


def atomic_write_text(path: os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def append_lines(path: os.PathLike, lines: list[str]) -> None:
    """``lines`` added at the end of the text file ``path`` (a log), the whole file written
    atomically; nothing happens without lines."""
    if not lines:
        return
    path = Path(path)
    before = path.read_text() if path.is_file() else ""
    atomic_write_text(path, before + "".join(f"{line}\n" for line in lines))


def atomic_write_json(path: os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_png(path: os.PathLike, image) -> None:
    """``image`` as an 8-bit PNG, written atomically.

    A float ``(H, W)`` or ``(H, W, C)`` tensor or array (``C`` 1, 3 or 4) is in [0, 1]: clamped,
    times 255, rounded half to even. A ``uint8`` one already holds the 8-bit values and is
    written as it is; a PIL image is saved as it is (mode and metadata such as an ICC profile
    kept, so a derived file keeps its source's colours)."""
    import io

    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        picture = image
    else:
        if hasattr(image, "detach"):
            image = image.detach().cpu().numpy()
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = np.clip(arr if arr.dtype.kind == "f" else arr.astype(np.float32), 0, 1) * 255
            arr = arr.round().astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        picture = Image.fromarray(arr)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"task": {"lr": 1e-3}}`` -> ``{"task.lr": 1e-3}`` (dotted keys, leaves kept)."""
    flat: dict = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
