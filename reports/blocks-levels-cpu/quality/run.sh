#!/bin/sh
# Equal-steps quality of block-sampled training by cell level against random per-sample
# sampling: a 2048x2048 (4 MP) crop of the shipped photo, ASMR 4 x 128, 2^14 samples per step,
# 300 steps, seed 0, everything else equal. Run from the repository root.
set -e
PHOTO=datasets/samples/images/Kleiber_by_Lukas_Baubkus.jpg
OUT=reports/blocks-levels-cpu/quality
COMMON="--model asmr --data image data.path=$PHOTO data.crop=[2048,2048] data.batch_size=16384
  model.hidden_dim=128 model.n_layers=4 task.lr=1e-3 task.eval_every=300 --steps 300 --seed 0
  --logger none trainer.progress_bar=false trainer.latency_repeats=1 trainer.latency_warmup=0"
python -m inrbench.cli run $COMMON data.sampling=blocks --out $OUT/default
python -m inrbench.cli run $COMMON data.sampling=blocks data.block=[64,64] --out $OUT/level1
python -m inrbench.cli run $COMMON data.sampling=blocks data.block=[8,8] --out $OUT/level2
python -m inrbench.cli run $COMMON data.sampling=random --out $OUT/random
# equal wall time (about the random run's 410 s on the shared machine): as many block steps
python -m inrbench.cli run $(echo $COMMON | sed 's/--steps 300/--steps 3900/; s/task.eval_every=300/task.eval_every=1300/') \
  data.sampling=blocks --out $OUT/default-time
python -m inrbench.cli run $(echo $COMMON | sed 's/--steps 300/--steps 2800/; s/task.eval_every=300/task.eval_every=700/') \
  data.sampling=blocks data.block=[8,8] --out $OUT/level2-time
