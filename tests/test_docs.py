"""Every command the README and the documentation pages show works as shown.

Which lines are commands: in README.md and docs/*.md, the lines of fenced ``bash`` blocks
that start with ``inrbench `` (indented lines too; a trailing ``# comment`` is dropped and a
trailing ``\\`` continues the line). Inline code spans are prose and are not collected. In
fenced ``text`` blocks, a ``$ inrbench ...`` line followed by ``inrbench: error: ...`` shows a
refused command: it must exit 2 and print that line.

What is checked:

* ``inrbench run ...`` composes and validates: it is run with ``--dry-run`` and must exit 0.
  A ``--resume`` command needs a finished folder, a command with a shell variable (``$m``) or a
  plugin model (``module:Class``) needs its surroundings: those are parsed only;
* every other subcommand is parsed by the command line's own parser, as ``inrbench`` parses it;
* the README's quick start runs, shortened to 3 steps, into a temporary folder.

Placeholders: a ``data.path=`` that does not exist in the repository stands for a file of the
reader's; the test puts the shipped sample of its kind in its place (by extension: images,
audio, video, meshes; a small array file written to the temporary folder for ``.npy`` and
``.raw``; a bare name such as ``DIR`` is a folder of images).

The results page is generated from the committed records: the committed ``docs/results.md``
must equal a fresh generation.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pytest

from inrbench.cli import _parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLES = ROOT / "datasets" / "samples"
STAND_INS = {
    (".png", ".jpg", ".jpeg"): SAMPLES / "images" / "Kleiber_by_Lukas_Baubkus.jpg",
    (".wav", ".flac"): SAMPLES / "speech" / "sense_and_sensibility_01_austen_64kb-0870.wav",
    (".mp4", ".yuv"): SAMPLES / "video" / "bikes.mp4",
    (".off", ".obj", ".ply"): SAMPLES / "meshes" / "bunny00.off",
}
#: array files no sample ships as: a small one of the same kind, written once per session
ARRAYS = {".npy": lambda p: np.save(p, np.zeros((32, 32, 3), np.uint8)),
          ".raw": lambda p: np.zeros((32, 32), np.uint16).tofile(p)}
FENCE = re.compile(r"^```(\w*)\s*$")


def _blocks(text: str):
    """(language, first line number, lines) of every fenced block."""
    lang, start, lines = None, 0, []
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line.strip())
        if m and lang is None:
            lang, start, lines = m.group(1) or "", no + 1, []
        elif line.strip() == "```" and lang is not None:
            yield lang, start, lines
            lang = None
        elif lang is not None:
            lines.append(line)


def _commands(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for line in lines:
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("inrbench "):
            out.append(re.sub(r"\s+#.*$", "", line).strip())
    return out


def documented() -> list[tuple[str, str]]:
    """(where, command) of every command in a bash block."""
    found = []
    for page in PAGES:
        for lang, start, lines in _blocks(page.read_text()):
            if lang == "bash":
                found += [(f"{page.relative_to(ROOT)}:{start}", c) for c in _commands(lines)]
    return found


def refused() -> list[tuple[str, str, str]]:
    """(where, command, error line) of every refused command shown in a text block."""
    found = []
    for page in PAGES:
        for lang, start, lines in _blocks(page.read_text()):
            if lang != "text":
                continue
            for i, line in enumerate(lines[:-1]):
                nxt = lines[i + 1].strip()
                if line.startswith("$ inrbench ") and nxt.startswith("inrbench: error:"):
                    found.append((f"{page.relative_to(ROOT)}:{start + i}", line[2:], nxt))
    return found


def _stand_in(value: str) -> str:
    if (ROOT / value).exists():
        return value
    suffix = Path(value).suffix.lower()
    for suffixes, sample in STAND_INS.items():
        if suffix in suffixes:
            return str(sample.relative_to(ROOT))
    if suffix in ARRAYS:
        path = Path(tempfile.gettempdir()) / f"inrbench-docs-stand-in{suffix}"
        if not path.exists():
            ARRAYS[suffix](path)
        return str(path)
    assert not suffix, f"no shipped stand-in for a {suffix} file ({value})"
    return str((SAMPLES / "images").relative_to(ROOT))  # DIR: a folder of images


def argv_of(command: str) -> list[str]:
    argv = shlex.split(command)[1:]
    return [f"data.path={_stand_in(a.split('=', 1)[1])}" if a.startswith("data.path=") else a
            for a in argv]


def _parse(argv: list[str]) -> None:
    """As ``inrbench`` parses: flags anywhere, overrides anywhere, nothing unknown."""
    args, extra = _parser().parse_known_args(argv)
    flags = [e for e in extra if e.startswith("-")]
    assert not flags and (not extra or hasattr(args, "overrides")), f"unknown: {extra}"


COMMANDS = documented()


def test_the_pages_show_commands():
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert "README.md" in where and len(where) > 5, where
    assert refused(), "the configuration page shows refused commands"


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w} {c[:60]}" for w, c in COMMANDS])
def test_documented_command(where, command, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WANDB_MODE", "offline")
    argv = argv_of(command)
    _parse(argv)
    model = argv[argv.index("--model") + 1] if "--model" in argv else ""
    if argv[0] != "run" or "--resume" in argv or "$" in command or ":" in model:
        return  # parsed above; a plugin class (module:Class) lives in the reader's own file
    assert main([*argv, "--dry-run"]) == 0, f"{where}: {command}"
    assert "dry run" in capsys.readouterr().out


@pytest.mark.parametrize("where,command,error", refused(), ids=[w for w, _, _ in refused()])
def test_refused_command(where, command, error, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main([*argv_of(command), "--dry-run"]) == 2, f"{where}: {command}"
    assert error in capsys.readouterr().err


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start"):]
    _, _, lines = next(_blocks(section))
    return _commands(lines)


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    """The README's three commands, at 3 steps, into a temporary folder: the runs train and
    the comparison reads them beside the committed record."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WANDB_MODE", "offline")
    commands = _quick_start()
    assert len(commands) == 3
    for command in commands:
        argv = [a.replace("runs/", f"{tmp_path}/") if not a.startswith("data.") else a
                for a in argv_of(command)]
        if argv[0] == "run":
            argv[argv.index("--steps") + 1] = "3"
            argv += ["--logger", "none", "trainer.latency_repeats=1", "trainer.latency_warmup=0"]
        assert main(argv) == 0, command
    out = capsys.readouterr().out
    assert "smoke" in out and "asmr4" in out


def test_results_page_is_generated():
    from inrbench.reports.results_page import results_page

    page = ROOT / "docs" / "results.md"
    assert page.read_text() == results_page(ROOT / "reports", page), (
        "docs/results.md is stale: python -m inrbench.reports.results_page")
