"""``inrbench`` command line: run, profile, list, report, compare, sweep.

    inrbench run --model asmr --data cameraman [--steps N] [--seed S] [--out DIR]
                 [--logger wandb|csv|none] [--resume] [key=value ...]
    inrbench profile --model M --data D [key=value ...] [--json]
    inrbench run --experiment E [--rows r1,r2] [--steps N] [--out DIR] [key=value ...]
    inrbench run --experiment E [--vary data.KEY=V1,V2|A-B] [--seeds 0,1,2] [--out DIR]
    inrbench profile --experiment E [--json]
    inrbench list
    inrbench run ... --seeds 0,1,2 [--devices N --strategy ddp]
    inrbench report RESULTS_DIR [--out reports/NAME] [--format md,html,png] [--tables 2,12]
    inrbench compare RUN [RUN ...] [--format text|md|csv|json]
    inrbench bench --models M1,M2 --data D (--budget 10m | --steps N) [key=value ...]
    inrbench sweep conf/sweep/X.yaml [--local [--trials N] [--out DIR]]
    inrbench agent-run          (started by 'wandb agent' for each sweep trial)

User errors (unknown names, bad overrides, bad bases, missing files) exit with status 2 and
one line naming the problem; no traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import signal
import sys
from pathlib import Path

from inrbench.errors import InrbenchError, Interrupted


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inrbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a model on a signal and write a results folder")
    run.add_argument("--model", help="registered model name (see 'inrbench list')")
    run.add_argument("--data", help="registered data module name")
    run.add_argument("--task", help="registered task (task.name), its keys in "
                     "conf/task/<name>.yaml: fit (default, one signal), qat, ofa, meta or "
                     "hypernet; see 'inrbench list'")
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
    run.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2,3,4: one run per seed "
                     "in --out/seed<N>/ (with --experiment: --out/<row id>/<signal>/seed<N>/)")
    run.add_argument("--vary", help="with --experiment: every row on every signal, "
                     "data.KEY=V1,V2 or a range (e.g. data.image=1-24), into "
                     "--out/<row id>/<signal>/seed<N>/; the rows get mean ± std over them")
    run.add_argument("--no-stack", dest="stack", action="store_false",
                     help="with --seeds or --vary: train the runs one by one instead of as "
                     "stacked models (the same records; stacking is only faster)")
    run.add_argument("--stack-size", type=int, metavar="N",
                     help="at most N runs in one stacked model (default: as many as keep a "
                     "step within 2^14 samples on a CPU, 2^18 on a GPU)")
    run.add_argument("--devices", type=int, help="processes (CPU) or GPUs to train on "
                     "(trainer.devices; >1 needs data.sampling=random or tile)")
    run.add_argument("--num-nodes", type=int, help="machines, each running --devices processes "
                     "(trainer.num_nodes; started by SLURM srun or torchrun on each machine)")
    run.add_argument("--strategy", help="Lightning strategy for --devices > 1 (trainer.strategy;"
                     " ddp: gloo on CPU, NCCL on GPU)")
    run.add_argument("--verbose", action="store_true", help="show Lightning's banners and "
                     "info lines (trainer.verbose)")
    run.add_argument("--dry-run", action="store_true", help="compose and validate the config, "
                     "print it and exit without training or writing anything")
    run.add_argument("overrides", nargs="*", help="config overrides key=value")

    prof = sub.add_parser("profile", help="print params, macs and macs_measured")
    prof.add_argument("--model")
    prof.add_argument("--data")
    prof.add_argument("--experiment", help="every row of conf/experiment/E.yaml beside the "
                      "paper's printed figures")
    prof.add_argument("--json", action="store_true", help="print JSON")
    prof.add_argument("overrides", nargs="*", help="config overrides key=value")

    sub.add_parser("list", help="list models, data modules and experiments")
    _add_report_commands(sub)
    from inrbench.cli.compress import add_commands as add_compression_commands

    add_compression_commands(sub)  # compress, decompress, codecs (inrbench/cli/compress.py)
    from inrbench.cli.check import add_command as add_check_command

    add_check_command(sub)  # check-model: a model against the contract
    from inrbench.cli.bench import add_command as add_bench_command

    add_bench_command(sub)  # bench: models under one budget, the quality-cost frontier
    return p


# -- report, compare, sweep, agent-run (inrbench.reports, inrbench.compare, inrbench.sweep) --

def _add_report_commands(sub) -> None:
    rep = sub.add_parser("report", help="the paper's tables and figures from run results")
    rep.add_argument("results", nargs="+", help="folder(s) searched recursively for run "
                     "results (several: one report of all their runs)")
    rep.add_argument("--out", help="report folder (default reports/<results folder name>)")
    rep.add_argument("--format", default="md,html,png", help="comma-separated: md,html,png")
    rep.add_argument("--tables", help="comma-separated tables, e.g. 2,12, table2 or "
                     "ani_table1 (default: the paper's tables 2-6 and 10-12)")
    rep.add_argument("--title", help="report title")
    rep.add_argument("--note", action="append", help="a paragraph for the report's "
                     "introduction (repeatable)")

    cmp = sub.add_parser("compare", help="runs side by side (mean ± std over seeds)")
    cmp.add_argument("runs", nargs="+", help="run folders, or folders holding runs")
    cmp.add_argument("--format", default="text", choices=["text", "md", "csv", "json"])

    sw = sub.add_parser("sweep", help="a W&B-format sweep (conf/sweep/*.yaml)")
    sw.add_argument("file", help="sweep file, e.g. conf/sweep/table12_bases.yaml")
    sw.add_argument("--local", action="store_true", help="run the trials here, no W&B server")
    sw.add_argument("--trials", type=int, help="with --local: number of trials (grid: default "
                    "the whole grid)")
    sw.add_argument("--out", help="with --local: sweep folder (trial-NNN/ run folders inside);"
                    " rerun with the same --out and arguments to continue it: finished trials "
                    "are kept, the rest resume (other arguments are refused)")
    sw.add_argument("--new", action="store_true", help="with --local: start a new sweep "
                    "folder beside --out (OUT-2, OUT-3, ...) when --out already holds one")
    sw.add_argument("--seed", type=int, default=0, help="with --local: seed of the search")
    sw.add_argument("--steps", type=int, help="training steps of every trial (task.steps)")
    sw.add_argument("--logger", choices=["wandb", "csv", "none"], help="trainer.logger")
    sw.add_argument("--project", help="online: W&B project (default the file's, or inrbench)")
    sw.add_argument("--entity", help="online: W&B entity (default your default entity)")
    sw.add_argument("overrides", nargs="*", help="config overrides key=value for every trial")

    agent = sub.add_parser("agent-run", help="one sweep trial, as started by 'wandb agent'")
    agent.add_argument("--out", default="runs/sweeps", help="parent of the trial folders")
    agent.add_argument("overrides", nargs="*", help="config overrides key=value")


def cmd_report(args) -> int:
    from inrbench.experiments import profile_experiment
    from inrbench.reports.build import make_report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    tables = None
    if args.tables:  # 2 is table2; an experiment's own name (ani_table1) is kept
        from inrbench.config import list_experiments

        named = set(list_experiments())
        tables = [t if t.startswith("table") or t in named else f"table{t}"
                  for t in (t.strip() for t in args.tables.split(",")) if t]
    results = [Path(r) for r in args.results]
    out = Path(args.out) if args.out else Path("reports") / (results[0].resolve().name
                                                           or "report")
    done = make_report(results if len(results) > 1 else results[0], out, formats, tables,
                       args.title, args.note, profile=profile_experiment)
    print(f"report of {done['runs']} run(s): {out}")
    for f in done["files"]:
        print(f"  {f}")
    for err in done.get("errors", []):  # marked in the report; the exit status says so too
        print(f"inrbench: report: {err}", file=sys.stderr)
    return 1 if done.get("errors") else 0


def cmd_compare(args) -> int:
    from inrbench.compare import compare

    print(compare(args.runs, args.format))
    return 0


def cmd_sweep(args) -> int:
    from inrbench import sweep

    if not args.local:
        if args.trials or args.out or args.overrides or args.steps or args.logger or args.new:
            raise InrbenchError("--trials/--out/--new/--steps/--logger and overrides apply to "
                                "--local sweeps; an online sweep takes its settings from the "
                                "file")
        made = sweep.create_online(args.file, project=args.project, entity=args.entity)
        print(f"created W&B sweep {made['id']} in {made['entity']}/{made['project']}")
        print(f"start workers with:\n  {made['command']}")
        return 0
    extra = {"task.steps": args.steps, "trainer.logger": args.logger}

    def done(rec):
        value = "-" if rec["value"] is None else f"{rec['value']:.4g}"
        status = "kept (finished earlier)" if rec.get("kept") else rec["status"]
        print(f"\n[trial {rec['trial']}] {status}: {rec['metric']}={value} "
              f"{rec['searched']} -> {rec['out']}")

    try:
        records = sweep.run_local(args.file, trials=args.trials, out=args.out, seed=args.seed,
                                  extra=extra, cli_overrides=args.overrides, on_trial=done,
                                  new=args.new)
    except Interrupted as e:  # the same command into the sweep's folder continues it
        from inrbench.cli.bench import with_out

        argv = with_out(getattr(args, "argv", sys.argv[1:]), Path(e.out).parent)
        print(f"inrbench: stopped by {signal.Signals(e.signum).name} at step {e.step} of "
              f"{Path(e.out).name}; continue the sweep with: inrbench {shlex.join(argv)}",
              file=sys.stderr)
        return 128 + e.signum
    out = Path(records[0]["out"]).parent if records else args.out
    finished = [r for r in records if r["status"] == "finished"]
    print(f"\nsweep: {len(finished)} of {len(records)} trials finished; summary: "
          f"{out}/sweep.csv, {out}/sweep.json")
    return 0 if records and len(finished) == len(records) else 1


def cmd_agent_run(args) -> int:
    from inrbench.sweep import agent_run

    return agent_run(["--out", args.out, *args.overrides])


def cmd_run_seeds(args) -> int:
    """``--seeds 0,1,2``: the same run once per seed, into ``--out/seed<N>/``."""
    import copy

    if args.seed is not None:
        raise InrbenchError("give either --seed S or --seeds S1,S2,..., not both")
    from inrbench.cli.bench import parse_seeds

    seeds = parse_seeds(args.seeds)
    if args.out:
        base = Path(args.out)
    elif args.experiment:
        from inrbench.config.experiment import load_experiment
        from inrbench.experiments import default_out

        base = default_out(load_experiment(args.experiment))
    else:
        from inrbench.run import default_out

        cfg = _compose_from(args)
        base = default_out(f"{cfg.model.name}-{cfg.data.name}")
    status = 0
    if args.stack and not args.resume and not args.experiment:
        status = _run_seeds_stacked(args, seeds, base)
    else:
        for seed in seeds:
            one = copy.copy(args)
            one.seeds, one.seed, one.out = None, seed, str(base / f"seed{seed}")
            print(f"\n== seed {seed}: {one.out}")
            status = max(status, cmd_run(one))
    if status == 0:
        from inrbench.compare import compare

        print(f"\n{len(seeds)} seeds in {base}:\n{compare([str(base)])}")
    return status


def _run_seeds_stacked(args, seeds: list[int], base: Path) -> int:
    """The seeds of one run trained as one stacked model where the model allows it
    (:func:`inrbench.run.stacked.train_runs`), each into ``base/seed<N>/`` as if alone;
    1 when a seed failed."""
    from inrbench.cli.bench import check_stack_size
    from inrbench.config.validation import check_buildable
    from inrbench.run.folder import holds_results
    from inrbench.run.stacked import train_runs

    cfgs = []
    for seed in seeds:
        out = base / f"seed{seed}"
        if holds_results(out):
            raise InrbenchError(f"{out} already holds a run; pass --resume to continue it "
                                f"or choose another --out")
        cfg = _compose_from(args, _run_keys(args, seed=seed, out=str(out)))
        check_buildable(cfg)
        cfgs.append(cfg)
    print(f"\n== seeds {', '.join(map(str, seeds))}: {base}")
    status = 0
    for seed, result in zip(seeds, train_runs(cfgs, max_members=check_stack_size(
            args.stack_size))):
        if isinstance(result, Exception):
            # the others trained; this seed's error is one line, with a run's exit status
            print(f"inrbench: error: seed {seed}: {result}", file=sys.stderr)
            status = max(status, getattr(result, "exit_status", 2)
                         if isinstance(result, InrbenchError) else 1)
        else:
            print(f"seed {seed}: {_summary_line(result)}")
    return status


def _compose_from(args, extra=None):
    from inrbench.config import compose

    return compose(model=args.model, data=args.data, overrides=args.overrides, extra=extra)


def cmd_run(args) -> int:
    from inrbench.run import run

    if args.dry_run:
        return cmd_run_dry(args)
    if args.vary is not None and not args.experiment:
        raise InrbenchError("--vary needs --experiment E (for --model M, 'inrbench bench "
                            "--models M --data D --vary ...' fits every signal)")
    if args.seeds is not None and not args.experiment:
        return cmd_run_seeds(args)
    if args.experiment or args.rows:
        return cmd_run_experiment(args)
    extra = _run_keys(args)
    if args.resume:
        if not args.out:
            raise InrbenchError("--resume needs --out DIR, the folder of the run to continue")
        from inrbench.config.resume import resume_config

        # the folder's config; arguments that disagree with it are refused
        cfg = resume_config(Path(args.out), args.overrides, extra, model=args.model,
                            data=args.data)
    else:
        cfg = _compose_from(args, extra)
    summary = run(cfg, resume=args.resume)
    print(f"\n{_summary_line(summary)}")
    print(f"results: {summary['out']}")
    return 0


def cmd_run_dry(args) -> int:
    """``--dry-run``: the resolved config of every run the command would start (each row of
    ``--experiment``, the folder's own config with ``--resume``), composed and validated as
    a real run's is; nothing is trained or written."""
    from omegaconf import OmegaConf

    from inrbench.config import row_config
    from inrbench.config.experiment import load_experiment, select_rows

    extra = _run_keys(args)
    if args.experiment or args.rows:
        _experiment_only(args)
        exp = load_experiment(args.experiment)
        ids = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
        extra.pop("trainer.out")
        configs = {f"{exp.name} row {row['id']}": row_config(exp, row, args.overrides, extra)
                   for row in select_rows(exp, ids)}
        if args.vary is not None or args.seeds is not None:  # one config per member
            from inrbench.cli.bench import parse_seeds
            from inrbench.experiments import plan_members

            seeds = parse_seeds(args.seeds) if args.seeds is not None else None
            planned = plan_members(exp, select_rows(exp, ids), Path(args.out or "OUT"),
                                   args.overrides, extra, args.vary, seeds)
            configs = {f"{exp.name} row {row['id']}, {m['folder']}": m["cfg"]
                       for row, members in planned for m in members}
    elif args.resume:
        if not args.out:
            raise InrbenchError("--resume needs --out DIR, the folder of the run to continue")
        from inrbench.config.resume import resume_config

        configs = {f"resume {args.out}": resume_config(Path(args.out), args.overrides, extra,
                                                       model=args.model, data=args.data)}
    else:
        configs = {"run": _compose_from(args, extra)}
    from inrbench.config.machine import check_machine

    for name, cfg in configs.items():
        check_machine(cfg, here=False)  # a dry run may be made where the run will not be
        print(f"# {name} (dry run: nothing trained or written)")
        print(OmegaConf.to_yaml(cfg, resolve=True))
    return 0


def _run_keys(args, seed=None, out=None) -> dict:
    """The config keys ``inrbench run``'s flags set (``seed``/``out`` in place of
    ``--seed``/``--out``: one seed's folder of ``--seeds``)."""
    return {"task.steps": args.steps, "task.name": args.task,
            "trainer.seed": args.seed if seed is None else seed,
            "trainer.out": args.out if out is None else out, "trainer.logger": args.logger,
            **_parallel_flags(args)}


def _parallel_flags(args) -> dict:
    return {"trainer.devices": getattr(args, "devices", None),
            "trainer.num_nodes": getattr(args, "num_nodes", None),
            "trainer.strategy": getattr(args, "strategy", None),
            "trainer.verbose": True if getattr(args, "verbose", False) else None}


def _summary_line(summary: dict) -> str:
    stack = summary.get("stack")
    took = (f"in {summary['wall_s']:.0f} s" if stack is None else
            f"stacked with {stack['of'] - 1} more in {stack['wall_s']:.0f} s")
    return (f"{summary['model']} on {summary['data']}: {summary['metric']} final "
            f"{summary[summary['metric']]:.2f}, best PSNR {summary['best_psnr']:.2f} dB, "
            f"{summary['steps']} steps {took}; "
            f"params {summary['params']:,}, MACs/sample {_macs(summary)}, "
            f"render {summary['latency_ms']:.1f} ms")


def _macs(summary: dict) -> str:
    if summary.get("macs") is not None:
        return f"{summary['macs']:,.1f}"
    return f"{summary['macs_measured']:,.1f} (measured only)"


def _experiment_only(args) -> None:
    if args.model or args.data:
        raise InrbenchError("give either --experiment (its rows name the models and data) or "
                            "--model/--data, not both")
    if not args.experiment:
        raise InrbenchError("--rows needs --experiment E (see 'inrbench list')")


def cmd_run_experiment(args) -> int:
    """Train the experiment's rows one after another into ``--out/<row id>/``; a row that
    fails is reported and the next one runs; exit 1 when any row failed. With ``--vary``
    or ``--seeds``: every row on every signal and seed (:func:`cmd_run_members`)."""
    from inrbench.config import row_config
    from inrbench.config.experiment import load_experiment, select_rows
    from inrbench.experiments import run_experiment
    from inrbench.run import default_out

    _experiment_only(args)
    exp = load_experiment(args.experiment)
    ids = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    rows = select_rows(exp, ids)
    if args.resume and not args.out:
        raise InrbenchError("--resume needs --out DIR, the results folder of the experiment")
    out = Path(args.out) if args.out else default_out(exp.name)
    extra = {"task.steps": args.steps, "task.name": args.task, "trainer.seed": args.seed,
             "trainer.logger": args.logger, **_parallel_flags(args)}
    if args.vary is not None or args.seeds is not None:
        return cmd_run_members(args, exp, rows, out, extra)
    from inrbench.config.machine import check_machine

    for row in rows:  # bad overrides, sections or trainer settings stop here, before training
        check_machine(row_config(exp, row, args.overrides, extra))

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


def cmd_run_members(args, exp, rows, out: Path, extra: dict) -> int:
    """``--experiment E --vary data.KEY=... --seeds ...``: each row's members trained into
    ``--out/<row id>/<signal>/seed<N>/`` (finished ones kept, interrupted ones resumed), then
    per row the mean ± sample std over its members beside the paper's figure."""
    from inrbench.cli.bench import parse_seeds
    from inrbench.experiments import run_members

    if args.seeds is not None and args.seed is not None:
        raise InrbenchError("give either --seed S or --seeds S1,S2,..., not both")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None

    def done(entry):
        n = entry["aggregate"]["n"]
        print(f"\n[{entry['id']}] {n} of {len(entry['members'])} members finished")

    from inrbench.cli.bench import check_stack_size

    results = run_members(exp, rows, out, args.overrides, extra, args.vary, seeds,
                          on_done=done, stack=args.stack,
                          max_members=check_stack_size(args.stack_size))
    failed = [r for r in results if r["status"] != "ok"]
    print(f"\n{exp.name}: {len(results) - len(failed)} of {len(results)} rows complete; "
          f"results: {out}")
    for r in results:
        agg, paper = r["aggregate"], r["paper"]
        line = f"  {r['id']}: {agg['n']} of {agg['of']} members"
        for key in dict.fromkeys([k for k in ("best_psnr", agg["metric"]) if k]):
            fig = agg["figures"].get(key)
            if fig is not None:
                std = "" if fig["std"] is None else f" ± {fig['std']:.2f}"
                line += f", {key} {fig['mean']:.2f}{std}"
        if agg["metric"] and paper.get(agg["metric"]):
            line += f" (paper {paper[agg['metric']]})"
        if r["status"] != "ok":
            line += f"; FAILED: {r['error']}"
        print(line)
    return 1 if failed else 0


def cmd_profile(args) -> int:
    from inrbench.build import build_datamodule, build_model
    from inrbench.profiling import profile

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
        print("macs           " + (f"{stats['macs']:,.2f}  (per sample, paper convention)"
                                     if stats["macs"] is not None else
                                     "-  (measured only: the model has no paper convention)"))
        print(f"macs_measured  {stats['macs_measured']:,.2f}  (matmul MACs a full render runs)")
        print(f"flops          {stats['flops']:,.2f}  (all arithmetic of a render per sample, "
              f"rule {stats['cost_rule']})")
        by_class = stats["flops_by_class"].items()
        print("  by class     " + ", ".join(f"{k} {v:,.1f}" for k, v in by_class))
        if stats["flops_unclassified"]:
            print("  unclassified (counted as elementwise): "
                  + ", ".join(stats["flops_unclassified"]))
    return 0


def cmd_profile_experiment(args) -> int:
    """Our params/MACs of every row beside the paper's printed figures; exit 1 when a row
    differs from the paper without a documented reason (or cannot be profiled), so it can
    gate a change."""
    from inrbench.config.experiment import load_experiment
    from inrbench.experiments import format_profile, profile_experiment

    _experiment_only(args)
    if args.overrides:
        raise InrbenchError("profile --experiment compares the rows as the paper prints them; "
                            "it takes no key=value overrides")
    exp = load_experiment(args.experiment)
    results = profile_experiment(exp)
    print(json.dumps(results, indent=1) if args.json else format_profile(exp, results))
    bad = [r["id"] for r in results if r["status"] in ("mismatch", "error")]
    if bad:
        print(f"inrbench: {exp.name}: rows {', '.join(bad)} differ from the paper without a "
              f"documented reason (see their notes)", file=sys.stderr)
        return 1
    return 0


def cmd_list(args) -> int:
    from inrbench.config import list_experiments
    from inrbench.data import list_datamodules
    from inrbench.data.registry import DATAMODULES
    from inrbench.models import list_models
    from inrbench.models.registry import MODELS
    from inrbench.registry import TASKS
    from inrbench.tasks import list_tasks

    def names(found, registry):  # a plugin's entry names its package
        return ", ".join(f"{n} ({registry.origins[n]})" if n in registry.origins else n
                         for n in found)

    print("models:      " + names(list_models(), MODELS))
    print("data:        " + names(list_datamodules(), DATAMODULES))
    print("tasks:       " + names(list_tasks(), TASKS))
    print("experiments: " + ", ".join(list_experiments()))
    return 0


def _compression_commands() -> dict:
    from inrbench.cli.bench import COMMANDS as BENCH
    from inrbench.cli.check import COMMANDS as CHECK
    from inrbench.cli.compress import COMMANDS

    return {**COMMANDS, **CHECK, **BENCH}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value overrides may come before, between or after the flags
    args, extra = parser.parse_known_args(argv)
    flags = [e for e in extra if e.startswith("-")]
    if flags or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(flags or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    args.argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    # registering models/data is a side effect of importing the packages; then the plugins'
    import inrbench.data  # noqa: F401
    import inrbench.models  # noqa: F401
    import inrbench.tasks  # noqa: F401
    from inrbench.plugins import load_plugins, load_references

    load_plugins()

    try:
        load_references(_references(args))
        if getattr(args, "out", None):  # a results or report folder, or a file's folder
            from inrbench.run.folder import check_folder

            check_folder(Path(args.out), file=args.command in _FILE_OUT)
        return {"run": cmd_run, "profile": cmd_profile, "list": cmd_list, "report": cmd_report,
                "compare": cmd_compare, "sweep": cmd_sweep,
                "agent-run": cmd_agent_run, **_compression_commands()}[args.command](args)
    except InrbenchError as e:
        print(f"inrbench: error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 2)  # 1 for a run that failed (Diverged)
    except Interrupted as e:
        if e.rank == 0:
            print(f"inrbench: {_resume_line(e, sys.argv[1:] if argv is None else argv)}",
                  file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:  # outside training: nothing to checkpoint
        print("inrbench: interrupted (SIGINT)", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as e:
        if e.errno not in _DISK_FULL:
            raise
        where = f" {e.filename}" if e.filename else ""
        print(f"inrbench: error: cannot write{where}: {e.strerror} "
              f"[{errno.errorcode.get(e.errno)}]; free space there and try again",
              file=sys.stderr)
        return 2


def _references(args) -> dict:
    """What this command line names with ``--model``/``--data``/``--task`` (bench's lists,
    check-model's NAME): the only names a ``module:Class`` reference is imported for."""
    def split(value) -> list[str]:
        return [v.strip() for v in value.split(",")] if isinstance(value, str) else []

    models = split(getattr(args, "model", None)) + split(getattr(args, "models", None))
    if args.command == "check-model":
        models.append(args.name)
    return {"model": models, "data": split(getattr(args, "data", None)),
            "task": split(getattr(args, "task", None))}


_FILE_OUT = ("compress", "decompress")  # their --out names a file, not a folder
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _resume_line(e: Interrupted, argv: list[str]) -> str:
    """How the stopped run continues: the same command with ``--resume`` (and ``--out`` when
    it was left to the default; a row's or a seed's folder sits under the one to name)."""
    name = signal.Signals(e.signum).name
    argv = [str(a) for a in argv]
    if argv[:1] == ["stack-runs"]:  # a bench's child: the bench command continues it
        return (f"stopped by {name} at step {e.step}; each run of the stack keeps its "
                f"checkpoint (e.g. {Path(e.out) / 'checkpoints'}); rerun the bench command "
                f"to continue")
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        folder = Path(e.out)
        flags = {a.split("=")[0] for a in argv}
        if "--experiment" in flags and flags & {"--vary", "--seeds"}:
            folder = folder.parents[2]  # OUT/<row id>/<signal>/seed<N>/
        elif flags & {"--experiment", "--seeds"}:
            folder = folder.parent
        argv += ["--out", str(folder)]
    if "--resume" not in argv:
        argv.append("--resume")
    at = (f"checkpoint at step {e.step} written to {Path(e.out) / 'checkpoints' / 'last.ckpt'}"
          if e.saved else f"continue from the newest checkpoint in {Path(e.out) / 'checkpoints'}")
    return f"stopped by {name} at step {e.step}; {at}; resume with: inrbench {shlex.join(argv)}"


if __name__ == "__main__":
    sys.exit(main())
