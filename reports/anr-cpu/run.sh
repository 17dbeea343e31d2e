#!/usr/bin/env bash
# How the records in reports/anr-cpu/runs/ were made (issue 14), on the 2-core CPU, one thread,
# one run after another: ANR and Trans-INR (rows anr_cpu / transinr_cpu of
# conf/experiment/anr.yaml: same data, steps, seed and training settings), then ASMR fitted to
# each of the first 8 test images of the same set, the per-image reference of the amortized
# table, twice: the default ASMR (256 x 4, 134,659 parameters per image) and a small one
# (64 x 4, about as many parameters as ANR's 8,192 token floats). The runs' folders are in
# runs/anr-cpu/ (not committed); their records (no checkpoints) are copied here.
#   reports/anr-cpu/run.sh [stage ...]   stages: hypernet fit fit-small copy (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 WANDB_MODE=offline
OUT=runs/anr-cpu
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(hypernet fit fit-small copy)
for stage in "${stages[@]}"; do
  case $stage in
    hypernet)
      inrbench run --experiment anr --rows anr_cpu,transinr_cpu --out "$OUT" --logger csv \
        trainer.progress_bar=false ;;
    fit)
      for i in 0 1 2 3 4 5 6 7; do
        inrbench run --model asmr --data cifar10 data.split=test data.index=$i --steps 2000 \
          --out "$OUT/fit_asmr_test$i" --logger csv task.eval_every=500 \
          trainer.progress_bar=false
      done ;;
    fit-small)
      for i in 0 1 2 3 4 5 6 7; do
        inrbench run --model asmr --data cifar10 data.split=test data.index=$i --steps 2000 \
          --out "$OUT/fit_asmr64x4_test$i" --logger csv task.eval_every=500 \
          model.hidden_dim=64 model.n_layers=4 trainer.progress_bar=false
      done ;;
    copy)
      for d in "$OUT"/*/; do
        name=$(basename "$d")
        mkdir -p reports/anr-cpu/runs/"$name"
        for f in config.yaml metrics.json metrics.csv reconstruction.png reconstructions.npz \
                 super_resolution.png super_resolution.json; do
          if [ -f "$d/$f" ]; then cp "$d/$f" reports/anr-cpu/runs/"$name"/; fi
        done
      done ;;
    *) echo "unknown stage $stage (hypernet, fit, fit-small, copy)" >&2; exit 2 ;;
  esac
done
