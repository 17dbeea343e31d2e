#!/usr/bin/env bash
# Stacked fits on one lent GPU, about 8 minutes of device time: (1) the throughput comparison
# of benchmarks/stack_throughput.py (24 same-shape 64x64 crops x ASMR, SIREN, Instant-NGP:
# one process per fit, one at a time in one process, stacked), one model at a time under its
# own time limit, each into its record; (2) Table 2's ASMR(4) and ASMR(3) rows over seeds
# 0-4 at the paper's 10k steps through `inrbench run --experiment table2 --seeds`, the five
# seeds of a row as one stacked model (every finished member keeps its metrics.json). Records and the card
# (nvidia-smi, torch) land in $OUT.
#   usage (device machine, repository root): bash benchmarks/gpu_stack_session.sh
#   a CPU rehearsal with tiny budgets:
#   ACCEL=cpu STEPS=3 SIGNALS=2 PROCS=1 T2_STEPS=3 SEEDS=0,1 OUT=/tmp/o bash benchmarks/gpu_stack_session.sh
set -u
export PYTHONPATH=/tmp/site:$PWD WANDB_MODE=offline PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=${R:-/tmp/gpu-stack}; mkdir -p "$R"
ACCEL=${ACCEL:-gpu}          # trainer.accelerator of every fit
STEPS=${STEPS:-200}          # throughput: steps of every fit
SIGNALS=${SIGNALS:-24}       # throughput: 64x64 crops per model
PROCS=${PROCS:-4}            # throughput: fits of the one-process-per-fit variant
BENCH_LIMIT=${BENCH_LIMIT:-90}   # seconds per model of the throughput comparison
T2_STEPS=${T2_STEPS:-}       # Table 2: steps (empty: the paper's 10k)
SEEDS=${SEEDS:-0,1,2,3,4}
T2_LIMIT=${T2_LIMIT:-180}    # seconds for both Table 2 rows
{ nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
for m in asmr siren ngp; do
    OMP_NUM_THREADS=1 timeout "$BENCH_LIMIT" python3 benchmarks/stack_throughput.py --models $m \
        --steps "$STEPS" --signals "$SIGNALS" --procs-signals "$PROCS" --max-members 0,8 \
        --accelerator "$ACCEL" --record "$OUT/stack_throughput_$m.json" \
        > "$OUT/stack_throughput_$m.txt" 2>&1
    echo "stack_throughput $m: exit $?"; grep -v "bases not given" "$OUT/stack_throughput_$m.txt" | tail -n 8
done
# a 512x512 step is 2^18 samples, the default stack's whole budget: --stack-size puts the
# five seeds of a row in one stack (ASMR's step at 512x512 is small on a GPU)
T2=(--experiment table2 --rows asmr4,asmr3 --seeds "$SEEDS" --out "$R/table2-seeds"
    --stack-size "${T2_STACK:-5}"
    --logger csv trainer.progress_bar=false "trainer.accelerator=$ACCEL")
[ -n "$T2_STEPS" ] && T2+=(--steps "$T2_STEPS")
start=$(date +%s)
OMP_NUM_THREADS=1 timeout "$T2_LIMIT" python3 -m inrbench.cli run "${T2[@]}" > "$OUT/table2_seeds.log" 2>&1
echo "table2 seeds: exit $?, $(( $(date +%s) - start )) s"; tail -n 15 "$OUT/table2_seeds.log"
find "$R/table2-seeds" -name metrics.json | sort > "$OUT/table2_seeds_finished.txt"
echo "finished members: $(wc -l < "$OUT/table2_seeds_finished.txt")"
echo "stacked members: $(xargs -r grep -l '"stack"' < "$OUT/table2_seeds_finished.txt" | wc -l)"
tar czf "$OUT/table2_seeds.tgz" --exclude=checkpoints --exclude=wandb --exclude=logs -C "$R" .
ls -la "$OUT"
