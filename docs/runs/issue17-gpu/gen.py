"""Training clips for the GPU runs (issue #17), written in parallel: the CMU subjects of BVH_DIR (002 / 003 / 005
— never 007, the held-out subject; never the bundled recording) filmed by many camera rigs, in three kinds:

  p  plain views: the shipped default's cameras (tripods and stands, 0.8-2.8 m high, 2.5-7 m away), old noise
  a  motion-augmented copies (MotionAugment: bone lengths, proportions, turned limbs, mixed upper bodies of the
     same subject, mirroring, speed) on the same cameras (stage 1c's recipe)
  c  realistic phone / webcam cameras (synth.CameraRanges) with the old plain noise, motion augmented
     (stage 1d's cameras, 1c's augmentation)
  v  as a, plus new smooth limb movements in every clip (MotionAugment(limb_motion=1): legs swung forwards or
     sideways up to 60 deg, arms up to 120 deg, knees and elbows flexed or extended up to 60 deg; second lease)
  w  as c, plus the same limb movements (second lease)

usage: python gen.py BVH_DIR OUT_DIR KINDS CHUNKS RIGS_PER_CHUNK SEED [PROCS]
One job per (kind, subject, chunk): `synthesize_bvh_files` over the subject's files (the augmentation's upper
bodies come from the same subject) with seed SEED + chunk; the clip name's rig tag `_rK` becomes
`_<kind><chunk>x<K>` (`002_01_a3x5`), so names stay unique and the subject split still works.
"""
import sys
import time
from multiprocessing import Pool
from pathlib import Path


def film(job):
    files, out, kind, chunk, rigs, seed = job
    from mvcapture.data.augment import MotionAugment
    from mvcapture.data.synth import NoiseModel, synthesize_bvh_files

    kwargs = dict(rigs=rigs, seed=seed)
    if kind == "p":
        kwargs.update(height_range_m=(0.8, 2.8), distance_range_m=(2.5, 7.0))
    elif kind == "a":
        kwargs.update(height_range_m=(0.8, 2.8), distance_range_m=(2.5, 7.0), augment=MotionAugment())
    elif kind == "c":
        kwargs.update(realistic=True, noise=NoiseModel(), augment=MotionAugment())
    elif kind == "v":
        kwargs.update(height_range_m=(0.8, 2.8), distance_range_m=(2.5, 7.0), augment=MotionAugment(limb_motion=1.0))
    elif kind == "w":
        kwargs.update(realistic=True, noise=NoiseModel(), augment=MotionAugment(limb_motion=1.0))
    else:
        raise ValueError(kind)
    n = 0
    for clip in synthesize_bvh_files(files, **kwargs):
        stem, rig = clip.name.rsplit("_r", 1)
        clip.name = f"{stem}_{kind}{chunk}x{rig}"
        clip.save(Path(out) / f"{clip.name}.npz")
        n += 1
    return n


if __name__ == "__main__":
    bvh_dir, out, kinds = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    chunks, rigs, seed = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    procs = int(sys.argv[7]) if len(sys.argv) > 7 else 8
    out.mkdir(parents=True, exist_ok=True)
    by_subject = {}
    for f in sorted(Path(bvh_dir).glob("*.bvh")):
        by_subject.setdefault(f.name.split("_")[0], []).append(str(f))
    assert "007" not in by_subject, "the held-out subject must not be filmed for training"
    # kinds v and w came later: p, a and c keep the seeds of the first lease
    jobs = [(files, str(out), k, c, rigs, seed + 7919 * c + 104729 * "pacvw".index(k))
            for k in kinds for files in by_subject.values() for c in range(chunks)]
    jobs.sort(key=lambda j: -len(j[0]))  # big subjects first
    t0 = time.time()
    with Pool(procs) as pool:
        n = sum(pool.map(film, jobs, chunksize=1))
    print(f"wrote {n} clips of subjects {sorted(by_subject)} in {time.time() - t0:.0f} s", flush=True)
