"""`mvcapture bench sync`: time to align two 10-minute recordings (audio; motion), and the accuracy on
that generated pair (offset and clock drift known), with the hardware named. Each method runs on the
same pair with and without clock drift, so the cost and the gain of the drift fit show side by side."""

from __future__ import annotations

from mvcapture.cli import add_json_option, write_json

# Scene times at which the two recordings start, and B's clock drift per case (ppm).
START_A_S, START_B_S = 10.0, 22.3456
AUDIO_DRIFT_PPM = 37.0
MOTION_DRIFT_PPM = -1000.0  # a "30 fps" camera really running at 29.97 fps


def register(bench_sub) -> None:
    parser = bench_sub.add_parser("sync", help="time alignment of two long recordings (audio, motion)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each recording (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant, median kept")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from mvcapture.bench.common import hardware, time_call
    from mvcapture.sync import (RecordingSignals, estimate_audio_drift, estimate_audio_offset,
                                estimate_motion_drift, estimate_motion_offset, estimate_offset)
    from mvcapture.sync.synthetic import SyntheticScene, true_sync

    duration_s = 60.0 * args.minutes
    hw = hardware()
    print(f"sync: two generated recordings of {args.minutes:g} min each, B starts {START_B_S - START_A_S:.4f} s later")
    print(f"hardware: {hw['cpu']} ({hw['cpu_cores']} cores), CPU only (numpy/scipy FFT)")
    scene = SyntheticScene(duration_s + 2 * START_B_S, seed=7, audio_rate_hz=48000.0)
    results = {"hardware": hw, "minutes": args.minutes, "audio": [], "motion": []}

    for rate_a, rate_b in ((48000, 44100), (16000, 16000)):
        audio_a = scene.record_audio(rate_a, START_A_S, duration_s, seed=1)
        same_clock_b = scene.record_audio(rate_b, START_B_S, duration_s, seed=2)
        audio_b = scene.record_audio(rate_b, START_B_S, duration_s, drift_ppm=AUDIO_DRIFT_PPM, seed=2)
        for name, drift_ppm, fn in (
                ("offset, same clock", 0.0, lambda: estimate_audio_offset(audio_a, rate_a, same_clock_b, rate_b)),
                ("offset, drifting", AUDIO_DRIFT_PPM, lambda: estimate_audio_offset(audio_a, rate_a, audio_b, rate_b)),
                ("offset + drift", AUDIO_DRIFT_PPM, lambda: estimate_audio_drift(audio_a, rate_a, audio_b, rate_b))):
            offset, drift = true_sync(START_A_S, START_B_S, drift_ppm)
            seconds = time_call(fn, repeats=args.repeats, warmup=0)
            res = fn()
            row = {"rates_hz": [rate_a, rate_b], "variant": name, "true_drift_ppm": drift, "seconds": seconds,
                   "x_realtime": duration_s / seconds, "offset_error_ms": (res.offset_s - offset) * 1e3,
                   "drift_error_ppm": res.drift_ppm - drift, "confidence": res.confidence,
                   "low_confidence": res.low_confidence}
            results["audio"].append(row)
            print(f"audio {rate_a / 1000:g} kHz vs {rate_b / 1000:g} kHz, {name:18s}: {seconds:6.2f} s "
                  f"(x{row['x_realtime']:5.0f} real time)  offset error {row['offset_error_ms']:+8.3f} ms  "
                  f"drift error {row['drift_error_ppm']:+7.2f} ppm  confidence {res.confidence:.2f}"
                  + ("  [flagged]" if res.low_confidence else ""))

    view_a = scene.record_view(0.0, 60.0, START_A_S, duration_s, seed=1)
    same_clock_b = scene.record_view(90.0, 30.0, START_B_S, duration_s, seed=2)
    view_b = scene.record_view(90.0, 30.0, START_B_S, duration_s, drift_ppm=MOTION_DRIFT_PPM, seed=2)

    def views(b):
        return (view_a["kp2d_px"], view_a["conf"], view_a["frame_times_s"], b["kp2d_px"], b["conf"],
                b["frame_times_s"])

    signals = [RecordingSignals(kp2d_px=v["kp2d_px"], conf=v["conf"], frame_times_s=v["frame_times_s"])
               for v in (view_a, view_b)]
    frame_s = 1.0 / 30.0
    for name, drift_ppm, fn in (
            ("offset, same clock", 0.0, lambda: estimate_motion_offset(*views(same_clock_b))),
            ("offset, drifting", MOTION_DRIFT_PPM, lambda: estimate_motion_offset(*views(view_b))),
            ("offset + drift", MOTION_DRIFT_PPM, lambda: estimate_motion_drift(*views(view_b))),
            ("estimate_offset", MOTION_DRIFT_PPM, lambda: estimate_offset(*signals))):
        offset, drift = true_sync(START_A_S, START_B_S, drift_ppm)
        seconds = time_call(fn, repeats=args.repeats, warmup=0)
        res = fn()
        row = {"fps": [60, 30], "variant": name, "true_drift_ppm": drift, "method": res.method, "seconds": seconds,
               "x_realtime": duration_s / seconds, "offset_error_frames": (res.offset_s - offset) / frame_s,
               "drift_error_ppm": res.drift_ppm - drift, "confidence": res.confidence,
               "low_confidence": res.low_confidence}
        results["motion"].append(row)
        print(f"motion 60 fps vs 30 fps, {name:18s}: {seconds:6.2f} s (x{row['x_realtime']:5.0f} real time)  "
              f"offset error {row['offset_error_frames']:+7.3f} frames (30 fps)  drift error "
              f"{row['drift_error_ppm']:+8.2f} ppm  confidence {res.confidence:.2f}  [{res.method}]"
              + ("  [flagged]" if res.low_confidence else ""))
    print(f"goal: under 2 s per alignment of two {args.minutes:g}-minute recordings on CPU")
    write_json(args.json, results)
    return 0
