#!/bin/sh
# Quality of every cell level and of random per-sample sampling, Table 5's ASMR at the default
# 2^18 samples per step, equal wall time of about 240 s of training per configuration (from
# step times measured side by side in each process). One torch thread per process; each
# record names the load around it. Run from the repository root: `sh run.sh [bark|pluto|bird]`
# (all three when none is named).
set -e
export OMP_NUM_THREADS=1 PYTHONPATH=.
OUT=reports/blocks-spread-2e18
PHOTO=datasets/samples/images/Kleiber_by_Lukas_Baubkus.jpg
Q="python benchmarks/block_quality.py --batch 262144 --budget-s 240"
for signal in ${1:-bark pluto bird}; do
  case $signal in
    bark) $Q --data image --path $PHOTO --crop 2048,2048 --out $OUT/bark_2048.json ;;
    pluto) $Q --data pluto --out $OUT/pluto_3375x6000.json ;;
    bird) $Q --data image --path $PHOTO --crop 2048,2048 --crop-at 900,1800 \
            --out $OUT/bird_2048.json ;;
    *) echo "run.sh: unknown signal '$signal' (bark, pluto or bird)" >&2; exit 2 ;;
  esac
done
python benchmarks/block_quality.py --report $OUT/*.json > $OUT/quality.txt
