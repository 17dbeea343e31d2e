#!/bin/bash
cd /work/main && . .venv/bin/activate && export OMP_NUM_THREADS=1 WANDB_MODE=offline
OUT=reports/ani-photo
COMMON="--data kodak data.image=1 --logger none trainer.progress_bar=false trainer.latency_repeats=1 trainer.latency_warmup=1"
RAND="data.sampling=random data.batch_size=32768 task.eval_every=300"
SIREN="--model siren model.hidden_dim=128 model.n_layers=6 task.lr=1e-3 --steps 300 $RAND"
MFN="--model mfn_gabor model.hidden_dim=128 model.n_layers=6 task.lr=1e-2 --steps 300 $RAND"
ASMR="--model asmr model.bases=null model.hidden_dim=128 model.n_layers=6 task.lr=1e-3 --steps 1000 task.eval_every=1000"
for id in asmr-qat8 siren-qat8 mfn-qat8 asmr-qat4-relative; do
  case $id in asmr*) A=$ASMR;; siren*) A=$SIREN;; mfn*) A=$MFN;; esac
  case $id in *qat8) B=8;; *) B=4;; esac
  echo "== $id $(date +%T)"; inrbench run $COMMON --out $OUT/$id $A --task qat task.quant_bits=$B 2>&1 | tail -2
  inrbench compress $OUT/$id | tail -1
done
echo "done $(date +%T)"
