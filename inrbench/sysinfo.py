"""What produced a record: the checkout's commit and the library versions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import inrbench


def git_sha(short: bool = False) -> str | None:
    """The checkout's commit (``short``: abbreviated), with ``-dirty`` when tracked files
    differ from it; None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                              cwd=Path(inrbench.__file__).parent)

    try:
        head = git("rev-parse", *(["--short"] if short else []), "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    """Versions of Python and of the libraries a result depends on."""
    import lightning
    import numpy as np
    import torch
    import torchmetrics

    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__,
            "numpy": np.__version__, "inrbench": inrbench.__version__}
