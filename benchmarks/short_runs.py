"""Wall time and peak resident memory of each task's short run, as a new user tries it.

Each case is one ``inrbench run`` command line, run alone in its own process (``--logger
none``, results in a temporary folder), timed from start to exit (imports, data, training,
evaluation, records) with its peak RSS from ``os.wait4``'s resource usage of that child:

    fit        inrbench run --task fit --steps 3                       (ASMR on Cameraman)
    qat        inrbench run --task qat task.quant_bits=8 --steps 3
    ofa        inrbench run --task ofa --model siren model.hidden_dim=256 model.n_layers=7
    meta       inrbench run --task meta --data cifar10 --steps 3
    hypernet   inrbench run --task hypernet --model anr --data cifar10 --steps 3
    transinr   inrbench run --task hypernet --model transinr --data cifar10 --steps 5
    anr-images inrbench run --task hypernet --model anr --data images   (120 crops of the
               shipped photo, 96 x 96 resized to 32 x 32; peak RSS target 2 GiB)
    figure5    inrbench run --experiment figure5 --steps 3             (all three rows)
    anr        inrbench run --experiment anr --steps 3                 (all four rows)

Target: about a minute each (``TARGET_S``). Offline, CIFAR-10 and CelebA are the shipped
stand-in sets (the run says so). ``OMP_NUM_THREADS`` is passed on as set (1 on a shared box).
Each case prints one JSON line; ``--record FILE`` writes them with the machine and the load
average (``os.getloadavg``) before and after each case.

    OMP_NUM_THREADS=1 python benchmarks/short_runs.py --record reports/short-runs-cpu/runs.json
    python benchmarks/short_runs.py --only meta --only anr-images
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 90.0
ANR_IMAGES_LIMIT_GIB = 2.0
CASES: dict[str, list[str]] = {
    "fit": ["--task", "fit", "--steps", "3"],
    "qat": ["--task", "qat", "task.quant_bits=8", "--steps", "3"],
    "ofa": ["--task", "ofa", "--model", "siren", "model.hidden_dim=256", "model.n_layers=7",
            "--steps", "3"],
    "meta": ["--task", "meta", "--data", "cifar10", "--steps", "3"],
    "hypernet": ["--task", "hypernet", "--model", "anr", "--data", "cifar10", "--steps", "3"],
    "transinr": ["--task", "hypernet", "--model", "transinr", "--data", "cifar10",
                 "--steps", "5"],
    "anr-images": ["--task", "hypernet", "--model", "anr", "--data", "images", "--steps", "3"],
    "figure5": ["--experiment", "figure5", "--steps", "3"],
    "anr": ["--experiment", "anr", "--steps", "3"],
}


def crops_folder(root: Path, n: int = 120, size: int = 96) -> Path:
    """``n`` crops of the shipped photo on a 12 x 10 grid: a small folder of real images."""
    from PIL import Image

    from inrbench.data.fetch import sample_file

    folder = root / "crops"
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(sample_file("images/Kleiber_by_Lukas_Baubkus.jpg")) as im:
        photo = im.convert("RGB")
    W, H = photo.size
    cols = 12
    rows = -(-n // cols)
    for k in range(n):
        i, j = k % cols, k // cols
        x, y = i * (W - size) // (cols - 1), j * (H - size) // max(rows - 1, 1)
        photo.crop((x, y, x + size, y + size)).save(folder / f"crop{k:03d}.png")
    return folder


def run_case(name: str, args: list[str], root: Path, timeout: float) -> dict:
    out = root / name
    cmd = [sys.executable, "-m", "inrbench.cli", "run", *args, "--logger", "none",
           "--out", str(out)]
    if name == "anr-images":
        cmd.append(f"data.path={crops_folder(root)}")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    log = open(root / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    timed_out = False
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            timed_out = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    log.close()
    code = os.waitstatus_to_exitcode(status)
    row = {"case": name, "command": "inrbench run " + " ".join(args), "exit": code,
           "timed_out": timed_out, "wall_s": round(wall, 1),
           "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),  # KiB on Linux
           "within_target": (not timed_out and code == 0 and wall <= TARGET_S),
           "load_before": [round(v, 2) for v in load_before],
           "load_after": [round(v, 2) for v in os.getloadavg()]}
    if name == "anr-images":
        row["under_2_gib"] = row["peak_rss_gib"] < ANR_IMAGES_LIMIT_GIB
    row["tail"] = (root / f"{name}.log").read_text(errors="replace").replace("\r", "\n") \
        .strip().splitlines()[-1:]
    row.update(_scored(out))
    return row


def _scored(out: Path) -> dict:
    """What each results folder's metrics.json says the test scores are over."""
    found = {}
    for path in sorted(out.glob("**/metrics.json")):
        m = json.loads(path.read_text())
        key = str(path.parent.relative_to(out)) if path.parent != out else "."
        found[key] = {k: m.get(k) for k in ("eval_images", "test_images", "eval_full_test_set",
                                            "subnets_scored", "subnets_total", "psnr")
                      if k in m}
    return {"records": found} if found else {}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=list(CASES), action="append")
    p.add_argument("--timeout", type=float, default=900, help="seconds per case")
    p.add_argument("--record", type=Path, help="write the rows and the machine as JSON")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="inrbench-short-") as tmp:
        for name in a.only or list(CASES):
            row = run_case(name, CASES[name], Path(tmp), a.timeout)
            print(json.dumps(row), flush=True)
            rows.append(row)
            if a.record:  # after every case, so a stopped benchmark keeps what it measured
                _write(a.record, rows)
    return 0


def _write(path: Path, rows: list[dict]) -> None:
    import torch

    from inrbench.io import atomic_write_json

    atomic_write_json(path, {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "target_s": TARGET_S, "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
