"""Realistic cameras (synth.CameraRanges) with the plain synthetic detector noise (synth.NoiseModel), subjects
002/003/005, 8 rigs per clip, seed 107: separates camera realism from the measured MediaPipe noise."""
import sys, glob
from pathlib import Path
from mvcapture.data.synth import NoiseModel, synthesize_bvh_files
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
files = sorted(glob.glob(sys.argv[1] + "/*.bvh"))
n = 0
for clip in synthesize_bvh_files(files, rigs=8, seed=107, realistic=True, noise=NoiseModel()):
    clip.save(out / f"{clip.name}.npz"); n += 1
print("wrote", n)
