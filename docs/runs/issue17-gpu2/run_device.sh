#!/bin/bash
# Issue #17, second GPU lease: film training clips with the new limb-motion kinds (v, w; gen.py), fine-tune four
# candidates from the shipped default (stage 5) side by side until TRAIN_S seconds after the clips are filmed.
# The candidates are scored on the CPU afterwards (docs/runs/issue17-gpu/eval_gpu.py), not here.
# Inputs in .gpu/ (ignored, carried): bvh_tv.tar.xz (CMU 002/003/005 only), site/ (platformdirs, an av stand-in).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/.gpu/site OMP_NUM_THREADS=3 MKL_NUM_THREADS=3
D1=docs/runs/issue17-gpu; D=docs/runs/issue17-gpu2
TRAIN_S=${TRAIN_S:-330}; CHUNKS=${CHUNKS:-8}; RIGS=${RIGS:-4}; PROCS=${PROCS:-15}; PY=${PY:-python3}
W=${W:-/tmp/w}; mkdir -p $W/out
(nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; nproc --all) 2>&1 | tee $W/out/machine.txt
tar xJf .gpu/bvh_tv.tar.xz -C $W
OMP_NUM_THREADS=1 timeout 120 $PY $D/gen.py $W/bvh_tv $W/data pacvw $CHUNKS $RIGS 2027 $PROCS 2>&1 | tee $W/out/gen.log
DEADLINE=$(( $(date +%s) + TRAIN_S ))  # loading the clips counts against it, so every candidate stops on time
C='"data":"'$W/data'","stride":27,"seed":18,"threads":3,"init":"resources/lifter/default.pt","deadline":'$DEADLINE
for spec in \
  '{"name":"s5_pacvw","lr":1e-4,"batch":32,"kinds":"pacvw","warmup":100,'"$C"'}' \
  '{"name":"s5_vw","lr":1e-4,"batch":32,"kinds":"vw","warmup":100,'"$C"'}' \
  '{"name":"s5_cw","lr":1e-4,"batch":32,"kinds":"cw","warmup":100,'"$C"'}' \
  '{"name":"s5_pacvw_hi","lr":3e-4,"batch":64,"kinds":"pacvw","warmup":100,'"$C"'}'; do
  name=$(echo "$spec" | sed 's/.*"name":"\([^"]*\)".*/\1/')
  timeout $((TRAIN_S + 90)) $PY $D1/train_gpu.py $W/out "$spec" > $W/out/$name.log 2>&1 &
done
wait
tail -n 2 $W/out/*.log
cd $W/out && tar cf $OUT/models.tar s5_*.pt s5_*.json 2>/dev/null
tar czf $OUT/logs.tar.gz *.log *.txt *_log.json 2>/dev/null
ls -la $OUT
