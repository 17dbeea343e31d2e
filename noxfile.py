"""nox sessions: tests, lint (ruff and the import layers), bench, docs, results."""

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


@nox.session
def docs(session):
    """The documentation site, warnings as errors (broken links into reports/ included)."""
    session.install(TORCH)
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def results(session):
    """Regenerate docs/results.md from the committed records."""
    session.install(TORCH)
    session.install("-e", ".")
    session.run("python", "-m", "inrbench.reports.results_page")
