"""``inrbench check-model NAME [key=value ...] [--json] [--steps N]``: the model contract
(:mod:`inrbench.contract`) on small 1-D, 2-D and 3-D signals, before a model is trained.

Exit status: 0 when every check passes or is skipped, 1 when one fails, 2 on an unknown model
or key or a value its rule refuses (raised as :class:`~inrbench.errors.ConfigError`; the
caller prints it as one line).
"""

from __future__ import annotations

import json

from inrbench.errors import ConfigError

#: the command's name and its entry point, for the dispatcher of ``inrbench.cli``
COMMAND = "check-model"


def add_command(sub) -> None:
    """Add ``check-model`` to the ``inrbench`` subparsers ``sub``."""
    c = sub.add_parser(COMMAND, help="check a registered model against the model contract "
                       "(forward/render, gradients, state dict, MACs, block path, a short fit)")
    c.add_argument("name", help="registered model name (see 'inrbench list')")
    c.add_argument("overrides", nargs="*", help="constructor keys key=value (or "
                   "model.key=value), e.g. hidden_dim=32")
    c.add_argument("--json", action="store_true", help="print the checks as JSON")
    c.add_argument("--steps", type=int, default=20, help="Adam steps of the fit check "
                   "(default 20)")


def _overrides(items: list[str]) -> dict:
    from inrbench.config.files import parse_overrides
    from inrbench.config.validation import to_plain

    plain = to_plain(parse_overrides(list(items or [])))
    model = plain.pop("model", None) or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model={model!r} is no section; write model.key=value or key=value")
    others = [k for k, v in plain.items() if isinstance(v, dict)]
    if others:
        raise ConfigError(f"check-model takes constructor keys only (key=value or "
                          f"model.key=value), got {', '.join(o + '.*' for o in others)}")
    return {**plain, **model}


def cmd_check_model(args) -> int:
    """Run the checks and print them (a table, or JSON with ``--json``); 0 all pass or skip,
    1 any fail. Bad names, keys or values raise a ConfigError (exit 2 in the caller)."""
    from inrbench.contract import check_model, format_checks

    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be an integer >= 1, got {args.steps}")
    checks = check_model(args.name, _overrides(args.overrides), fit_steps=args.steps or 20)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(f"{args.name}:")
        print(format_checks(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


#: ``{command: handler}`` as ``inrbench.cli.main`` dispatches
COMMANDS = {COMMAND: cmd_check_model}
