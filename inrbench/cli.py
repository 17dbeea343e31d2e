"""``inrbench`` command line: run, profile, list.

    inrbench run --model asmr --data cameraman [--steps N] [--seed S] [--out DIR]
                 [--logger wandb|csv|none] [--resume] [key=value ...]
    inrbench profile --model M --data D [key=value ...] [--json]
    inrbench list

User errors (unknown names, bad overrides, bad bases, missing files) exit with status 2 and
one line naming the problem; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from inrbench.errors import InrbenchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inrbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a model on a signal and write a results folder")
    run.add_argument("--model", help="registered model name (see 'inrbench list')")
    run.add_argument("--data", help="registered data module name")
    run.add_argument("--steps", type=int, help="training steps (task.steps)")
    run.add_argument("--seed", type=int, help="random seed (trainer.seed)")
    run.add_argument("--out", help="results folder (trainer.out)")
    run.add_argument("--logger", choices=["wandb", "csv", "none"], help="trainer.logger")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint")
    run.add_argument("overrides", nargs="*", help="config overrides key=value")

    prof = sub.add_parser("profile", help="print params, macs and macs_measured")
    prof.add_argument("--model")
    prof.add_argument("--data")
    prof.add_argument("--json", action="store_true", help="print JSON")
    prof.add_argument("overrides", nargs="*", help="config overrides key=value")

    sub.add_parser("list", help="list models, data modules and experiments")
    return p


def _compose_from(args, extra=None):
    from inrbench.config import compose

    return compose(model=args.model, data=args.data, overrides=args.overrides, extra=extra)


def cmd_run(args) -> int:
    from inrbench.config import load_yaml
    from inrbench.runner import run

    extra = {"task.steps": args.steps, "trainer.seed": args.seed, "trainer.out": args.out,
             "trainer.logger": args.logger}
    if args.resume:
        if not args.out:
            raise InrbenchError("--resume needs --out DIR, the folder of the run to continue")
        saved = Path(args.out) / "config.yaml"
        if not saved.is_file():
            raise InrbenchError(f"--resume: {saved} does not exist; is {args.out} a run folder?")
        from inrbench.config import check_keys, conf_dir, parse_overrides

        cfg = load_yaml(saved)
        cli = parse_overrides(args.overrides)
        check_keys(cli, load_yaml(conf_dir() / "defaults.yaml"))
        cfg = OmegaConf.merge(cfg, cli)
        for key, value in extra.items():
            if value is not None:
                OmegaConf.update(cfg, key, value)
    else:
        cfg = _compose_from(args, extra)
    summary = run(cfg, resume=args.resume)
    print(f"\n{summary['model']} on {summary['data']}: {summary['metric']} final "
          f"{summary[summary['metric']]:.2f}, best PSNR {summary['best_psnr']:.2f} dB, "
          f"{summary['steps']} steps in {summary['wall_s']:.0f} s; "
          f"params {summary['params']:,}, MACs/sample {summary['macs']:,.1f}, "
          f"render {summary['latency_ms']:.1f} ms")
    print(f"results: {summary['out']}")
    return 0


def cmd_profile(args) -> int:
    from inrbench.profiling import profile
    from inrbench.runner import build_datamodule, build_model

    cfg = _compose_from(args)
    spec = build_datamodule(cfg).spec()
    stats = profile(build_model(cfg, spec), spec.shape)
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"model {cfg.model.name} on {cfg.data.name} {tuple(spec.shape)}x{spec.channels}")
        print(f"params         {stats['params']:,}")
        print(f"macs           {stats['macs']:,.2f}  (per sample, paper convention)")
        print(f"macs_measured  {stats['macs_measured']:,.2f}  (matmul MACs a full render runs)")
    return 0


def cmd_list(args) -> int:
    from inrbench.config import list_experiments
    from inrbench.data import list_datamodules
    from inrbench.models import list_models

    print("models:      " + ", ".join(list_models()))
    print("data:        " + ", ".join(list_datamodules()))
    print("experiments: " + ", ".join(list_experiments()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value overrides may come before, between or after the flags
    args, extra = parser.parse_known_args(argv)
    flags = [e for e in extra if e.startswith("-")]
    if flags or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(flags or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    # registering models/data is a side effect of importing the packages
    import inrbench.data  # noqa: F401
    import inrbench.models  # noqa: F401

    try:
        return {"run": cmd_run, "profile": cmd_profile, "list": cmd_list}[args.command](args)
    except InrbenchError as e:
        print(f"inrbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
