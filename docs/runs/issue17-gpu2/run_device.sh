#!/bin/bash
# Issue #17, second GPU lease: film training clips with the limb-motion kinds v and w beside p, a, c
# (docs/runs/issue17-gpu/gen.py, seed 2027) and fine-tune four candidates from the shipped default (stage 5) side
# by side until TRAIN_S seconds after the clips are filmed; scored on the CPU afterwards (../issue17-gpu/eval_gpu.py).
# usage: bash docs/runs/issue17-gpu2/run_device.sh a|b
#   a  (first call, 330 s) lr 1e-4 / 3e-4, each candidate validated on its own kinds of subject 003
#   b  (second call, 300 s, the same clips) lower learning rates, every candidate validated on one set (003, all
#      five kinds; `_pa`: kinds p + a only)
# Inputs in .gpu/ (ignored, carried): bvh_tv.tar.xz (CMU 002/003/005 only), site/ (platformdirs, an av stand-in).
set -u
RUN=${1:?give the candidate set: a or b}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/.gpu/site OMP_NUM_THREADS=3 MKL_NUM_THREADS=3
D1=docs/runs/issue17-gpu
case $RUN in
  a) PREFIX=s5_; TRAIN_S=${TRAIN_S:-330}
     SPECS=('"name":"s5_pacvw","lr":1e-4,"batch":32,"kinds":"pacvw"'
            '"name":"s5_vw","lr":1e-4,"batch":32,"kinds":"vw"'
            '"name":"s5_cw","lr":1e-4,"batch":32,"kinds":"cw"'
            '"name":"s5_pacvw_hi","lr":3e-4,"batch":64,"kinds":"pacvw"') ;;
  b) PREFIX=s5b_; TRAIN_S=${TRAIN_S:-300}
     SPECS=('"name":"s5b_pacvw_3e5","lr":3e-5,"batch":32,"kinds":"pacvw","val_kinds":"pacvw"'
            '"name":"s5b_pacvw_1e5","lr":1e-5,"batch":32,"kinds":"pacvw","val_kinds":"pacvw"'
            '"name":"s5b_vw_3e5","lr":3e-5,"batch":32,"kinds":"vw","val_kinds":"pacvw"'
            '"name":"s5b_pacvw_3e5_pa","lr":3e-5,"batch":32,"kinds":"pacvw","val_kinds":"pa"') ;;
  *) echo "unknown candidate set $RUN (a or b)" >&2; exit 2 ;;
esac
CHUNKS=${CHUNKS:-8}; RIGS=${RIGS:-4}; PROCS=${PROCS:-15}; PY=${PY:-python3}
W=${W:-/tmp/w}; mkdir -p $W/out
(nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; nproc --all) 2>&1 | tee $W/out/machine.txt
tar xJf .gpu/bvh_tv.tar.xz -C $W
OMP_NUM_THREADS=1 timeout 120 $PY $D1/gen.py $W/bvh_tv $W/data pacvw $CHUNKS $RIGS 2027 $PROCS 2>&1 | tee $W/out/gen.log
DEADLINE=$(( $(date +%s) + TRAIN_S ))  # loading the clips counts against it, so every candidate stops on time
C='"warmup":100,"data":"'$W/data'","stride":27,"seed":18,"threads":3,"init":"resources/lifter/default.pt","deadline":'$DEADLINE
for s in "${SPECS[@]}"; do
  spec="{$s,$C}"
  name=$(echo "$spec" | sed 's/.*"name":"\([^"]*\)".*/\1/')
  timeout $((TRAIN_S + 90)) $PY $D1/train_gpu.py $W/out "$spec" > $W/out/$name.log 2>&1 &
done
wait
tail -n 2 $W/out/*.log
cd $W/out && tar cf $OUT/models.tar ${PREFIX}*.pt ${PREFIX}*.json 2>/dev/null
tar czf $OUT/logs.tar.gz *.log *.txt *_log.json 2>/dev/null
ls -la $OUT
