"""``inrbench`` command line: run, profile, list.

    inrbench run --model asmr --data cameraman [--steps N] [--seed S] [--out DIR]
                 [--logger wandb|csv|none] [--resume] [key=value ...]
    inrbench profile --model M --data D [key=value ...] [--json]
    inrbench run --experiment E [--rows r1,r2] [--steps N] [--out DIR] [key=value ...]
    inrbench profile --experiment E [--json]
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
    run.add_argument("--experiment", help="train the rows of conf/experiment/E.yaml into "
                     "--out/<row id>/ (see 'inrbench list')")
    run.add_argument("--rows", help="with --experiment: comma-separated row ids (default all; "
                     "they run in the table's order)")
    run.add_argument("overrides", nargs="*", help="config overrides key=value")

    prof = sub.add_parser("profile", help="print params, macs and macs_measured")
    prof.add_argument("--model")
    prof.add_argument("--data")
    prof.add_argument("--experiment", help="every row of conf/experiment/E.yaml beside the "
                      "paper's printed figures")
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

    if args.experiment or args.rows:
        return cmd_run_experiment(args)
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
    print(f"\n{_summary_line(summary)}")
    print(f"results: {summary['out']}")
    return 0


def _summary_line(summary: dict) -> str:
    return (f"{summary['model']} on {summary['data']}: {summary['metric']} final "
            f"{summary[summary['metric']]:.2f}, best PSNR {summary['best_psnr']:.2f} dB, "
            f"{summary['steps']} steps in {summary['wall_s']:.0f} s; "
            f"params {summary['params']:,}, MACs/sample {summary['macs']:,.1f}, "
            f"render {summary['latency_ms']:.1f} ms")


def _experiment_only(args) -> None:
    if args.model or args.data:
        raise InrbenchError("give either --experiment (its rows name the models and data) or "
                            "--model/--data, not both")
    if not args.experiment:
        raise InrbenchError("--rows needs --experiment E (see 'inrbench list')")


def cmd_run_experiment(args) -> int:
    """Train the experiment's rows one after another into ``--out/<row id>/``; a row that
    fails is reported and the next one runs; exit 1 when any row failed."""
    from inrbench.experiments import (
        default_out,
        load_experiment,
        row_config,
        run_experiment,
        select_rows,
    )

    _experiment_only(args)
    exp = load_experiment(args.experiment)
    ids = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    rows = select_rows(exp, ids)
    if args.resume and not args.out:
        raise InrbenchError("--resume needs --out DIR, the results folder of the experiment")
    out = Path(args.out) if args.out else default_out(exp)
    extra = {"task.steps": args.steps, "trainer.seed": args.seed, "trainer.logger": args.logger}
    for row in rows:  # bad overrides or sections stop here, before anything trains
        row_config(exp, row, args.overrides, extra)

    def done(entry):
        if entry["status"] == "ok":
            print(f"\n[{entry['id']}] {_summary_line(entry['summary'])}")

    results = run_experiment(exp, rows, out, args.overrides, extra, resume=args.resume,
                             on_done=done)
    failed = [r for r in results if r["status"] != "ok"]
    print(f"\n{exp.name}: {len(results) - len(failed)} of {len(results)} rows trained; "
          f"results: {out}")
    for r in results:
        if r["status"] == "ok":
            s, paper = r["summary"], r["paper"]
            metric = s["metric"]
            line = f"  {r['id']}: ok, best PSNR {s['best_psnr']:.2f} dB"
            if metric != "psnr":
                line += f", {metric} {s[metric]:.2f}"
            if paper.get(metric):
                line += f" (paper {paper[metric]})"
        else:
            line = f"  {r['id']}: FAILED: {r['error']}"
        print(line)
    return 1 if failed else 0


def cmd_profile(args) -> int:
    from inrbench.profiling import profile
    from inrbench.runner import build_datamodule, build_model

    if args.experiment:
        return cmd_profile_experiment(args)
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


def cmd_profile_experiment(args) -> int:
    """Our params/MACs of every row beside the paper's printed figures (exit 0 on mismatch)."""
    from inrbench.experiments import format_profile, load_experiment, profile_experiment

    _experiment_only(args)
    if args.overrides:
        raise InrbenchError("profile --experiment compares the rows as the paper prints them; "
                            "it takes no key=value overrides")
    exp = load_experiment(args.experiment)
    results = profile_experiment(exp)
    print(json.dumps(results, indent=1) if args.json else format_profile(exp, results))
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
