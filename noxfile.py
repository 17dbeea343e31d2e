"""nox sessions: tests, lint (ruff and the import layers), bench."""

import nox

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"  # the CPU build on this project's machines; PyPI's default elsewhere


@nox.session
def tests(session):
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session):
    """ruff, and import-linter's layer contracts (pyproject.toml), which read the package's
    imports, those inside functions included."""
    session.install(TORCH)
    session.install("-e", ".", "ruff", "import-linter>=2.1")
    session.run("ruff", "check", "inrbench", "tests", "benchmarks", "noxfile.py")
    session.run("lint-imports")


@nox.session
def bench(session):
    session.install(TORCH)
    session.install("-e", ".")
    for script in ("render.py", "train_step.py"):
        session.run("python", f"benchmarks/{script}", *session.posargs)
