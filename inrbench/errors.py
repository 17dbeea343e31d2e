"""User-facing errors: each names the problem and the fix; the CLI prints them as one line."""


class InrbenchError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(InrbenchError, ValueError):
    """A configuration value is invalid (bad bases, unknown key, unknown name...)."""


class DataError(InrbenchError):
    """A data file is missing, truncated or corrupt."""
