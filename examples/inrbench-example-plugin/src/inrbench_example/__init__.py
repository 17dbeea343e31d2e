"""An example inrbench plugin package (see docs/plugins.md in the inrbench repository)."""
