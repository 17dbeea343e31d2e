#!/bin/bash
# issue 13: INR compression points on the Kodak stand-in photo (512x768), CPU, 1 thread
set -u
cd /work/main && . .venv/bin/activate && export OMP_NUM_THREADS=1
OUT=runs/ani-photo
COMMON="--data kodak data.image=1 --logger none trainer.progress_bar=false trainer.latency_repeats=1 trainer.latency_warmup=1"
RAND="data.sampling=random data.batch_size=32768 task.eval_every=300"
S=300
A=1000
train() {  # id model-args...
  id=$1; shift
  [ -f $OUT/$id/metrics.json ] && return
  echo "== $id $(date +%T)"; inrbench run $COMMON --out $OUT/$id "$@" 2>&1 | tail -2
}
comp() {  # id
  id=$1
  [ -f $OUT/$id/metrics.json ] || return
  case $id in
    *-fp32) for b in 8 4; do inrbench compress $OUT/$id --bits $b | tail -1; done
            inrbench compress $OUT/$id --method none | tail -1;;
    *) inrbench compress $OUT/$id | tail -1;;
  esac
}
SIREN="--model siren model.hidden_dim=128 model.n_layers=6 task.lr=1e-3 --steps $S $RAND"
MFN="--model mfn_gabor model.hidden_dim=128 model.n_layers=6 task.lr=1e-2 --steps $S $RAND"
ASMR="--model asmr model.bases=null model.hidden_dim=128 model.n_layers=6 task.lr=1e-3 --steps $A task.eval_every=1000"
while kill -0 20709 2>/dev/null; do sleep 10; done; comp asmr-fp32
train asmr-qat4 $ASMR --task qat task.quant_bits=4; comp asmr-qat4
train mfn-fp32 $MFN; comp mfn-fp32
train mfn-qat4 $MFN --task qat task.quant_bits=4; comp mfn-qat4
train asmr-qat8 $ASMR --task qat task.quant_bits=8; comp asmr-qat8
train siren-qat8 $SIREN --task qat task.quant_bits=8; comp siren-qat8
train mfn-qat8 $MFN --task qat task.quant_bits=8; comp mfn-qat8
inrbench codecs runs/ani-photo/siren-fp32 --out runs/ani-photo/codecs | grep -v Kodak
echo "done $(date +%T)"
