"""mkdocs hooks: the CLI reference page, generated from the argument parser, and links from
the pages to files of the repository outside ``docs/`` (records under ``reports/``, config
files, examples).

A page links to a record as on GitHub, relative to its own file (``../reports/table2-cpu/``).
Such a link is checked here: a missing target is a warning, so ``mkdocs build --strict``
fails on it. In the built site it points at ``extra.repo_files`` (a URL of the repository's
tree, when set) or, relative, at the checkout the site was built in.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.inrbench")
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
CLI_PAGE = "cli.md"


def _help(parser) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return out.getvalue().rstrip()


def cli_reference() -> str:
    """``inrbench --help`` and ``inrbench <command> --help`` for every subcommand."""
    import argparse

    from inrbench.cli import _parser

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps to the terminal's width
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command-line reference", "",
             "Generated from the argument parser when the site is built (`docs/hooks.py`); "
             "`inrbench COMMAND --help` prints the same.", "",
             "```text", _help(parser), "```", ""]
    for name, cmd in sub.choices.items():
        parts += [f"## inrbench {name}", "", "```text", _help(cmd), "```", ""]
    return "\n".join(parts)


def on_files(files, config):
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files


def on_page_markdown(markdown, page, config, files):
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    src = (docs / page.file.src_uri).parent
    base = (config.get("extra") or {}).get("repo_files")
    site_page = Path(config["site_dir"]).resolve() / Path(page.file.dest_uri).parent

    def fix(m):
        bang, text, target = m.groups()
        if "://" in target or target.startswith(("#", "mailto:", "/")):
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = (src / path).resolve()
        if resolved == docs or docs in resolved.parents:
            return m.group(0)  # a page or asset of the site: mkdocs checks it
        if repo not in resolved.parents:
            log.warning(f"{page.file.src_uri}: link {target} leaves the repository")
            return m.group(0)
        if not resolved.exists():
            log.warning(f"{page.file.src_uri}: link {target} points at a missing file "
                        f"{resolved.relative_to(repo)}")
            return m.group(0)
        rel = resolved.relative_to(repo).as_posix() + ("/" if resolved.is_dir() else "")
        href = (posixpath.join(base, rel) if base
                else Path(os.path.relpath(repo, site_page)).as_posix() + "/" + rel)
        href += f"#{anchor}" if anchor else ""
        if bang:
            return f'<img src="{href}" alt="{text}">'
        return f'<a href="{href}">{_inline(text)}</a>'

    return LINK.sub(fix, markdown)


def _inline(text: str) -> str:
    """Link text as HTML: raw anchors keep mkdocs from checking these links, so their
    code spans are rendered here."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
