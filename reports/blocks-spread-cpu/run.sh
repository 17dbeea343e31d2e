#!/bin/sh
# Quality of every cell level and of random per-sample sampling, Table 5's ASMR, 2^14 samples
# per step, 16 random steps (equal wall time for the levels from step times measured side by
# side). One process at a time, one torch thread. Run from the repository root.
set -e
export OMP_NUM_THREADS=1 PYTHONPATH=.
OUT=reports/blocks-spread-cpu
PHOTO=datasets/samples/images/Kleiber_by_Lukas_Baubkus.jpg
Q="python benchmarks/block_quality.py --batch 16384 --random-steps 16"
uptime
$Q --data image --path $PHOTO --crop 2048,2048 --out $OUT/bark_2048.json      # top-left: bark
uptime
$Q --data pluto --out $OUT/pluto_3375x6000.json                               # the 20 MP stand-in
uptime
$Q --data image --path $PHOTO --crop 2048,2048 --crop-at 900,1800 --out $OUT/bird_2048.json
uptime
python benchmarks/block_quality.py --report $OUT/bark_2048.json $OUT/pluto_3375x6000.json \
  $OUT/bird_2048.json > $OUT/quality.txt
