#!/bin/bash
# GPU checks on a device lease: the CUDA tests, `bench lifter` and `bench procrustes` on the GPU. Run from the
# repository root; results in $OUT. The device image lacks platformdirs and PyAV: .gpu/site carries platformdirs
# (copied from the venv) and an import-only stand-in for av (no video is decoded here).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/.gpu/site OMP_NUM_THREADS=2
(nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; nproc) > $OUT/machine.txt 2>&1
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_procrustes.py tests/test_lifter_runtime.py -rA 2>&1 | tail -n 15 | tee $OUT/pytest_gpu.log
timeout 150 python3 -m mvcapture bench lifter --configs tiny,small,medium,full --device cuda --json $OUT/bench_lifter_cuda.json 2>&1 | tee $OUT/bench_lifter_cuda.log
timeout 90 python3 -m mvcapture bench procrustes --repeats 5 --json $OUT/bench_procrustes.json 2>&1 | tee $OUT/bench_procrustes.log
ls -la $OUT
