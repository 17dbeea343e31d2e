"""What the command line prints, as the tests of bad input read it."""

from __future__ import annotations

from inrbench.cli import main


def error_line(err: str) -> str:
    """stderr holds exactly one error line, no traceback and no library chatter (inrbench's
    own notes, which start with 'inrbench: ', may precede it)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("inrbench: error: ")]
    assert len(errors) == 1, err
    assert all(ln.startswith("inrbench: ") for ln in lines), err
    return errors[0]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``inrbench ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err
