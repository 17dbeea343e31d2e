"""What every part of a report is made of: sections of paragraphs, one table of cells and
figures. The section builders (``tables``, ``figure5``, ``amortized``, ``ratedistortion``,
``build``) return these and the renderers of :mod:`inrbench.reports.build` read them, so
this module imports nothing of the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    text: str
    href: str | None = None  # a run folder (made relative by the renderer)


@dataclass
class Figure:
    name: str  # file name, e.g. figure2.png
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[Cell]]] | None = None
    figures: list[Figure] = field(default_factory=list)
    level: int = 2


__all__ = ["Cell", "Figure", "Section"]
