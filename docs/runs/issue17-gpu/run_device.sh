#!/bin/bash
# Issue #17 on one GPU lease: film the training clips, train four candidates side by side until
# TRAIN_S seconds after the clips are filmed, score them and the shipped default on the bundled recording and held-out subject 007, bench the lifter.
# Inputs in .gpu/ (ignored, carried): bvh_tv.tar.xz (CMU 002/003/005), rec/ (the recording's detections and
# calibration), synth_007/, real_007/. Outputs in $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/.gpu/site OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
D=docs/runs/issue17-gpu
TRAIN_S=${TRAIN_S:-300}; CHUNKS=${CHUNKS:-12}; RIGS=${RIGS:-4}; PROCS=${PROCS:-14}; PY=${PY:-python3}
W=${W:-/tmp/w}; mkdir -p $W/out
(nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; nproc) 2>&1 | tee $W/out/machine.txt
tar xJf .gpu/bvh_tv.tar.xz -C $W
OMP_NUM_THREADS=1 timeout 150 $PY $D/gen.py $W/bvh_tv $W/data pac $CHUNKS $RIGS 2026 $PROCS 2>&1 | tee $W/out/gen.log
DEADLINE=$(( $(date +%s) + TRAIN_S ))  # loading the clips counts against it, so every candidate stops on time
C='"data":"'$W/data'","stride":27,"seed":17,"deadline":'$DEADLINE
for spec in \
  '{"name":"s_def_pa","init":"resources/lifter/default.pt","lr":1e-4,"batch":32,"kinds":"pa","warmup":100,'"$C"'}' \
  '{"name":"s_def_pac","init":"resources/lifter/default.pt","lr":1e-4,"batch":32,"kinds":"pac","warmup":100,'"$C"'}' \
  '{"name":"s_new_pac","init":"small","lr":5e-4,"batch":64,"kinds":"pac","warmup":300,'"$C"'}' \
  '{"name":"m_new_pac","init":"medium","lr":3e-4,"batch":64,"kinds":"pac","warmup":300,'"$C"'}'; do
  name=$(echo "$spec" | sed 's/.*"name":"\([^"]*\)".*/\1/')
  timeout $((TRAIN_S + 100)) $PY $D/train_gpu.py $W/out "$spec" > $W/out/$name.log 2>&1 &
done
wait
tail -n 3 $W/out/*.log
timeout 150 $PY $D/eval_gpu.py .gpu/rec .gpu/synth_007 .gpu/real_007 $W/out/eval.json resources/lifter/default.pt $W/out/*.pt 2>&1 | tee $W/out/eval.log
timeout 60 $PY -m mvcapture bench lifter --configs small,medium --device cuda --json $W/out/bench_cuda.json 2>&1 | tail -n 12 | tee $W/out/bench.log
cd $W/out && tar cf $OUT/small_models.tar s_*.pt s_*.json 2>/dev/null; tar cf $OUT/medium_model.tar m_*.pt m_*.json 2>/dev/null
tar czf $OUT/logs.tar.gz *.log *.txt *_log.json eval.json bench_cuda.json 2>/dev/null
ls -la $OUT
