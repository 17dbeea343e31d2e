#!/usr/bin/env bash
# The GPU work of one lent device session (see README "GPU results"): benchmarks on the idle
# card first, then Table 2 at the paper's 10k steps (SIREN(3)/(4), KiloNeRF(3), LoE(4), ASMR(3)
# and ASMR(4) over seeds 0-4, ASMR(4) with the official lr_min 1e-5 too) and Figure 5's
# meta-learning rows, as parallel processes sharing the card. Records land in $OUT.
#   usage (on the device machine, repository root): bash benchmarks/gpu_session.sh
# Measured on an H200 (2026-11-27): the benchmarks and Figure 5's ASMR row (600 outer steps,
# 66 s) finished; the 19 Table 2 processes sharing the card did NOT reach 10k steps within
# LIMIT=400 s (one card time-sliced between 19 CUDA contexts), and a killed run writes no
# metrics. SIREN(3)/(4) alone, 2 processes side by side, took 172 s / 186 s for 10k steps:
#   for row in siren3 siren4; do python3 -m inrbench.cli run --experiment table2 --rows $row \
#       --out $R/table2 --logger csv trainer.progress_bar=false & done; wait
# Give the ASMR seeds a session of their own (ASMR(4): 3.0 ms a step here, ~1 min per run).
set -u
export PYTHONPATH=/tmp/site:$PWD WANDB_MODE=offline PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/gpu; mkdir -p $R
{ nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
(cd benchmarks && timeout 150 python3 train_step.py --part full,blocks --repeats 20 \
    --per-sample-repeats 3) > "$OUT/bench_train_step.txt" 2>&1
(cd benchmarks && timeout 60 python3 render.py) > "$OUT/bench_render.txt" 2>&1
tail -n 12 "$OUT/bench_train_step.txt" "$OUT/bench_render.txt"
COMMON="--logger csv trainer.progress_bar=false"
run() {  # run NAME ARGS...: one background process with its own time limit and log
    local name=$1; shift
    OMP_NUM_THREADS=1 timeout ${LIMIT:-400} python3 -m inrbench.cli run "$@" $COMMON \
        > $R/$name.log 2>&1 &
}
for row in siren3 siren4 kilonerf3 loe4; do run t2-$row --experiment table2 --rows $row --out $R/table2; done
for s in 0 1 2 3 4; do
  for row in asmr3 asmr4; do run t2-$row-s$s --experiment table2 --rows $row --seed $s --out $R/table2-seeds/seed$s; done
  run t2-asmr4-lrmin-s$s --experiment table2 --rows asmr4 --seed $s --out $R/table2-lrmin1e-5/seed$s task.lr_min=1e-5
done
for row in asmr ngp siren; do
  run f5-$row --experiment figure5 --rows $row --steps 600 --out $R/figure5 task.outer_lr=1e-4 \
      task.eval_every=300 task.eval_images=1000
done
wait
grep -h -E "psnr final|rows trained|Error|error" $R/*.log | head -60
tar czf "$OUT/records.tgz" --exclude=checkpoints --exclude=wandb --exclude=logs -C $R .
tar czf "$OUT/logs.tgz" -C $R $(cd $R && ls *.log)
ls -la "$OUT"
