"""Score lifter files side by side (issue #17): the bundled recording (every view's N / PA-MPJPE against its
4-camera triangulation, every pair's lifter-only optical-axes error; as `mvcapture eval-recording`) and held-out
subject 007 (the shipped default's synthetic views, and realistic cameras with the measured MediaPipe noise; as
`mvcapture eval --variants baseline`, no flip).

usage: [EVAL_THREADS=4] python eval_gpu.py RECORDING_DIR SYNTH_007 REAL_007 OUT_JSON MODEL.pt...
"""
import json
import os
import sys
import time

import torch


def main(recording, synth, real, out, models):
    from mvcapture.data.recording_eval import evaluate_recording
    from mvcapture.io.clip import load_dataset
    from mvcapture.lifter import load_lifter
    from mvcapture.train.evaluate import evaluate_lifter

    torch.set_num_threads(int(os.environ.get("EVAL_THREADS", "4")))
    tests = {"synth_007": load_dataset(synth, min_views=1), "real_007": load_dataset(real, min_views=1)}
    results = {}
    for path in models:
        t = time.time()
        lifter = load_lifter(path)
        res = {"device": str(lifter.device)}
        try:
            rec = evaluate_recording(recording, model=lifter)
            res["recording"] = {"views": {k: {m: v[m] for m in ("n_mpjpe", "pa_mpjpe", "depth_ratio")}
                                          for k, v in rec["views"].items()},
                                "pairs": {p["pair"]: p["optical_axis_angle_deg"]["error"] for p in rec["pairs"]}}
        except Exception as exc:  # the training results must come back even if this breaks
            res["recording_error"] = repr(exc)
        for name, clips in tests.items():
            res[name] = evaluate_lifter(lifter, clips)
        res["seconds"] = time.time() - t
        results[path] = res
        r = res.get("recording", {})
        views = " ".join(f"{k} {v['n_mpjpe']:.1f}/{v['pa_mpjpe']:.1f}" for k, v in r.get("views", {}).items())
        pairs = " ".join(f"{k} {v:+.1f}" for k, v in r.get("pairs", {}).items())
        print(f"{path}: synth007 {res['synth_007']['mpjpe']:.1f} real007 {res['real_007']['mpjpe']:.1f} | {views} | "
              f"{pairs} | {res.get('recording_error', '')}", flush=True)
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
