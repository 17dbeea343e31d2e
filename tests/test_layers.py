"""The package's import graph: one way (import-linter's contracts in pyproject.toml) and without
a cycle anywhere, counting imports inside functions (grimp reads every import statement)."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("inrbench")


def test_no_import_cycle(graph):
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layer_contracts_hold():
    """import-linter's contracts (pyproject.toml), as ``lint-imports`` checks them."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
