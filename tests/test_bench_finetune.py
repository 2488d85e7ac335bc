"""`mvcapture bench finetune`: step times alone and beside a competing busy process, per thread setting."""

from __future__ import annotations

import json

import torch

from mvcapture.bench import finetune as bench
from mvcapture.cli import main


def test_busy_process_is_killed_after_the_block():
    with bench.busy_process(seconds=60) as proc:
        assert proc.poll() is None  # burning a core
    assert proc.poll() is not None


def test_cpu_settings_time_default_and_policy_threads_alone_and_competing():
    assert bench.cpu_settings(2, 1, compete=True) == [(2, False), (1, False), (2, True), (1, True)]
    assert bench.cpu_settings(4, 2, compete=False) == [(4, False), (2, False), (1, False)]


def test_competing_ratio_is_policy_busy_over_one_thread_alone():
    rows = [{"config": "tiny", "device": "cpu", "threads": t, "competing": c, "step_s": s}
            for t, c, s in ((2, False, 1.0), (1, False, 1.1), (2, True, 2.7), (1, True, 1.2))]
    assert abs(bench.competing_ratio(rows, "tiny", 1) - 1.2 / 1.1) < 1e-9
    assert abs(bench.competing_ratio(rows, "tiny", 2) - 2.7 / 1.1) < 1e-9


def test_bench_finetune_reports_alone_and_competing_rows(tmp_path, capsys):
    before = torch.get_num_threads()
    out = tmp_path / "bench.json"
    assert main(["bench", "finetune", "--configs", "tiny", "--frames", "9", "--batch-size", "1", "--repeats", "1",
                 "--json", str(out)]) == 0
    assert torch.get_num_threads() == before
    payload = json.loads(out.read_text())
    rows = payload["results"]
    assert {r["competing"] for r in rows} == {False, True}
    assert any(r["threads"] == payload["policy_threads"] and r["competing"] for r in rows)
    assert "policy_competing_vs_1thread_alone" in payload["ratios"]["tiny"]
    assert "with a competing busy process" in capsys.readouterr().out
