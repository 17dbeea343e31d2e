"""``inrbench bench --models M1,M2 --data D [key=value ...] (--budget TIME | --steps N)``:
every model trained under the same budget, one run at a time, into one folder, then the
quality-cost frontier report (:mod:`inrbench.bench`, :mod:`inrbench.reports.frontier`).

    inrbench bench --models asmr,siren,ngp,ffn,kilonerf --data image data.path=photo.png \\
        --budget 10m [--seeds 0,1,2] [--out DIR] [--quality 30]
    inrbench bench --models asmr,siren --data kodak --vary data.image=1-24 --steps 2000
    inrbench bench --experiment table2 --rows siren4,asmr4 --budget 5m

Every run is composed and checked before the first one trains. The folder's ``bench.json``
records the plan: a rerun with the same arguments skips finished runs and resumes the rest;
other arguments are refused, naming the difference (``--new`` starts OUT-2 instead).

Exit status: 0 when every run finished, 1 when one failed (the report covers the others),
2 on a bad name, key, budget or folder (one line, before anything trains or is written).
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

from inrbench.errors import ConfigError, Interrupted

COMMAND = "bench"


def add_command(sub) -> None:
    """Add ``bench`` to the ``inrbench`` subparsers ``sub``."""
    b = sub.add_parser(COMMAND, help="models under one budget on your signal(s): the "
                       "quality-cost frontier (PSNR vs MACs, latency, params, memory, time)")
    b.add_argument("--report", metavar="DIR", help="only (re)write the frontier report of "
                   "the bench folder DIR from its records; trains nothing")
    b.add_argument("--models", help="comma-separated registered models "
                   "(plugins and module:Class too), e.g. asmr,siren,ngp,ffn,kilonerf")
    b.add_argument("--data", help="data module(s), comma-separated, e.g. "
                   "image (with data.path=photo.png), cameraman, kodak")
    b.add_argument("--experiment", help="instead of --models/--data: the rows of a paper "
                   "table (conf/experiment/E.yaml), each row one point")
    b.add_argument("--rows", help="with --experiment: comma-separated row ids (default all)")
    b.add_argument("--vary", help="one signal per value: data.KEY=V1,V2 or a range, e.g. "
                   "data.image=1-24 (Kodak) or data.path=a.png,b.png")
    b.add_argument("--budget", help="training wall time per run, evaluations excluded "
                   "(trainer.max_time): seconds or 90s, 10m, 1h30m")
    b.add_argument("--steps", type=int, help="optimizer steps per run (task.steps)")
    b.add_argument("--ladder", metavar="AXIS=B1,B2", help="train every model at every "
                   "budget, sized by its knob (width, table size, points...): params=1e4,3e4 "
                   "or macs=... or flops=... (counted on meta tensors; within 5%% or the "
                   "nearest reachable)")
    b.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    b.add_argument("--out", help="bench folder (default runs/bench-<timestamp>); rerun "
                   "with the same --out and the same arguments to finish an interrupted "
                   "bench (another budget, model list, seeds or overrides is refused)")
    b.add_argument("--new", action="store_true", help="start a new bench folder beside "
                   "--out (OUT-2, OUT-3, ...) when --out already holds a bench")
    b.add_argument("--quality", type=float, help="the quality the one-line answers ask for "
                   "(default the middle of task.targets, e.g. 30 dB)")
    b.add_argument("--in-process", action="store_true", help="train in this process instead "
                   "of one child process per run (peak memory then includes earlier runs')")
    b.add_argument("--no-stack", dest="stack", action="store_false",
                   help="train every run alone, not the seeds/signals/rungs of one config as "
                   "one stacked model (the same records; stacking is only faster)")
    b.add_argument("--stack-size", type=int, metavar="N", help="at most N runs in one "
                   "stacked model (default: as many as keep a step within 2^14 samples on a "
                   "CPU, 2^18 on a GPU)")
    b.add_argument("overrides", nargs="*", help="config overrides key=value for every run")
    s = sub.add_parser("stack-runs", help="(used by bench) train the runs of a stack plan")
    s.add_argument("plan", help="the plan file a bench wrote")
    s.add_argument("--result", required=True, help="where to write each run's outcome")
    s.add_argument("--model", help="the module:Class model the bench's command line named")
    s.add_argument("--stack-size", type=int, metavar="N")


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` (of ``run`` and ``bench``): distinct integers, else one line."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs distinct integers, e.g. 0,1,2; got {text!r}")
    return seeds


def with_out(argv: list[str], folder: Path) -> list[str]:
    """``argv`` with ``--out folder`` in place of its ``--out`` and without ``--new``: the
    command that continues a campaign stopped in ``folder``."""
    kept, skip = [], False
    for a in map(str, argv):
        if skip or a == "--new" or a.startswith("--out="):
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        kept.append(a)
    return [*kept, "--out", str(folder)]


def cmd_stack_runs(args) -> int:
    from inrbench.bench_stacks import run_plan_file

    return run_plan_file(Path(args.plan), Path(args.result), check_stack_size(args.stack_size))


def check_stack_size(n: int | None) -> int | None:
    """``--stack-size N``: None (the default rule) or N >= 1."""
    if n is not None and n < 1:
        raise ConfigError(f"--stack-size must be an integer >= 1 (runs in one stacked "
                          f"model), got {n}")
    return n


def cmd_bench(args) -> int:
    from inrbench.bench import bench, signals
    from inrbench.ladder import parse_ladder
    from inrbench.reports.frontier import write_report
    from inrbench.run import default_out

    if args.report:
        if not Path(args.report).is_dir():
            raise ConfigError(f"--report {args.report}: no such folder; give a bench folder")
        report = write_report(Path(args.report), args.quality)
        for line in [*report["answers"], *report["files"]]:
            print(line)
        return 0
    if args.experiment and (args.models or args.data or args.vary):
        raise ConfigError("give either --experiment E (its rows name models and data) or "
                          "--models/--data, not both")
    if not args.experiment and (not args.models or not args.data):
        raise ConfigError("bench needs --models M1,M2 and --data D, --experiment E, or "
                          "--report DIR")
    if args.rows and not args.experiment:
        raise ConfigError("--rows needs --experiment E (see 'inrbench list')")
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    root = Path(args.out) if args.out else default_out("bench")

    def line(rec):
        tail = f": {rec['error']}" if rec["error"] else ""
        rung = f" {rec['budget']:g}" if rec.get("budget") is not None else ""
        print(f"[{rec['signal']} {rec['model']}{rung} seed{rec['seed']}] {rec['status']} "
              f"({rec['seconds']:.0f} s){tail}", flush=True)

    sigs = signals(args.data, args.vary) if not args.experiment else []
    ladder = parse_ladder(args.ladder) if args.ladder else None
    try:
        done = bench(models, sigs, root, budget=args.budget,
                     steps=args.steps, seeds=parse_seeds(args.seeds), overrides=args.overrides,
                     quality=args.quality, on_run=line, isolate=not args.in_process,
                     experiment=args.experiment, rows=rows, new=args.new, ladder=ladder,
                     stack=args.stack, max_members=check_stack_size(args.stack_size))
    except Interrupted as e:  # --in-process: the same command continues the bench
        # ROOT/<signal>/<model>[/<budget>]/seed<N>, ROOT/<data>/seed<N>/<row>
        folder = Path(e.out).parents[3 if ladder else 2]
        argv = shlex.join(["inrbench", *with_out(getattr(args, "argv", sys.argv[1:]), folder)])
        print(f"inrbench: stopped by {signal.Signals(e.signum).name} at step {e.step} of "
              f"{e.out}; continue the bench with: {argv}", file=sys.stderr)
        return 128 + e.signum
    report, root = done["report"], done["root"]
    n = len({r["model"] for r in done["runs"]})
    print(f"\nbench of {n} model(s) on {', '.join(report['signals'])}: {root}")
    for a in report["answers"]:
        print(f"  {a}")
    for f in report["files"]:
        print(f"  {f}")
    return 1 if any(r["status"] == "failed" for r in done["runs"]) else 0


#: ``{command: handler}`` as ``inrbench.cli.main`` dispatches
COMMANDS = {COMMAND: cmd_bench, "stack-runs": cmd_stack_runs}
