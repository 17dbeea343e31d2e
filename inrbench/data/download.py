"""Downloads into the cache folder, with size/sha256 checks and clear offline errors."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

from inrbench.errors import DataError
from inrbench.io import atomic_write_bytes, atomic_write_text


def data_root() -> Path:
    """``$INRBENCH_DATA``, else ``~/.cache/inrbench``."""
    return Path(os.environ.get("INRBENCH_DATA", Path.home() / ".cache" / "inrbench")).expanduser()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically; offline, raise a DataError naming URL and folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            payload = r.read()
    except Exception as e:  # noqa: BLE001 - any network failure means the same to the user
        raise DataError(
            f"could not download {url} ({type(e).__name__}: {e}); download it by hand and put "
            f"it at {dest} (folder {dest.parent}; set INRBENCH_DATA to use another cache folder)"
        ) from None
    atomic_write_bytes(dest, payload)
    return dest


class Manifest:
    """``SHA256SUMS.json`` in a data folder: published checksums, or recorded on first download."""

    def __init__(self, folder: Path, published: dict[str, str] | None = None):
        self.path = folder / "SHA256SUMS.json"
        self.published = published or {}

    def _load(self) -> dict[str, dict]:
        if self.path.exists():
            return json.loads(self.path.read_text())
        return {}

    def record(self, file: Path) -> None:
        entries = self._load()
        entries[file.name] = {"sha256": sha256(file), "bytes": file.stat().st_size}
        atomic_write_text(self.path, json.dumps(entries, indent=1, sort_keys=True))

    def verify(self, file: Path) -> None:
        expected = self.published.get(file.name) or self._load().get(file.name, {}).get("sha256")
        if expected is None:
            return
        entry = self._load().get(file.name, {})
        if entry.get("bytes") is not None and entry["bytes"] != file.stat().st_size:
            raise DataError(f"{file} has {file.stat().st_size} bytes, expected {entry['bytes']} "
                            f"(truncated download?); delete it and download it again")
        if sha256(file) != expected:
            raise DataError(f"{file} does not match its recorded sha256 {expected} (corrupt or "
                            f"replaced); delete it and download it again")
