#!/bin/bash
# issue 20 item 6: the five-model frontier on a 64x64 crop of Cameraman, 60 s and 10,000 steps
set -u
cd . && . .venv/bin/activate
export OMP_NUM_THREADS=1
OUT=reports/bench-cameraman-64
mkdir -p $OUT
COMMON="--models asmr,siren,ffn,ngp,kilonerf --data cameraman data.crop=[64,64] trainer.progress_bar=false trainer.latency_repeats=5 trainer.latency_warmup=1"
uptime > $OUT/load-start.txt
python -m inrbench.cli bench $COMMON task.eval_every=10 --budget 60s --out $OUT/time60 > $OUT/time60.log 2>&1
uptime > $OUT/load-mid.txt
python -m inrbench.cli bench $COMMON task.eval_every=250 --steps 10000 --out $OUT/steps10k > $OUT/steps10k.log 2>&1
uptime > $OUT/load-end.txt
echo DONE >> $OUT/load-end.txt
