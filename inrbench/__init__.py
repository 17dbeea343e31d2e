"""inrbench: a benchmark suite for implicit neural representations (coordinate networks)."""

__version__ = "0.1.0"
