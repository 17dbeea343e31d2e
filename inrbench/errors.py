"""User-facing errors: each names the problem and the fix; the CLI prints them as one line."""


class InrbenchError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(InrbenchError, ValueError):
    """A configuration value is invalid (bad bases, unknown key, unknown name...)."""


class DataError(InrbenchError):
    """A data file is missing, truncated or corrupt."""


class StorageError(InrbenchError):
    """A file could not be written (disk full, quota, read-only or missing folder)."""


class Diverged(InrbenchError):
    """Training produced a non-finite loss: the run stops without a result (exit status 1,
    a failed run rather than a bad input)."""

    exit_status = 1


class Interrupted(BaseException):
    """SIGTERM or SIGINT stopped training after a checkpoint at ``step`` (``saved``: written
    at that step; else the newest one on disk is where a resume starts). A BaseException, as
    KeyboardInterrupt is, so that no ``except Exception`` of a loop over runs swallows it."""

    def __init__(self, signum: int, out, step: int, saved: bool = True, rank: int = 0):
        super().__init__(signum, out, step, saved)
        self.signum, self.out, self.step, self.saved = int(signum), out, int(step), saved
        self.rank = int(rank)  # several processes: rank 0 says how to resume, the rest end quietly
