#!/bin/sh
# Quality of every cell level and of random per-sample sampling, Table 5's ASMR at the default
# 2^18 samples per step, equal wall time of about 240 s of training per configuration (from
# step times measured side by side in each process). One torch thread per process; the two
# 4 MP runs and the 20 MP run as the record's load lines say. Run from the repository root.
set -e
export OMP_NUM_THREADS=1 PYTHONPATH=.
OUT=reports/blocks-spread-2e18
PHOTO=datasets/samples/images/Kleiber_by_Lukas_Baubkus.jpg
Q="python benchmarks/block_quality.py --batch 262144 --budget-s 240"
case "${1:-all}" in
  bark|all) $Q --data image --path $PHOTO --crop 2048,2048 --out $OUT/bark_2048.json ;;
esac
case "${1:-all}" in
  pluto|all) $Q --data pluto --out $OUT/pluto_3375x6000.json ;;
esac
case "${1:-all}" in
  bird|all) $Q --data image --path $PHOTO --crop 2048,2048 --crop-at 900,1800 \
              --out $OUT/bird_2048.json ;;
esac
python benchmarks/block_quality.py --report $OUT/*.json > $OUT/quality.txt
