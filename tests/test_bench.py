"""Smoke test of the benchmark suite (`python -m bench`): tiny model at image_size 128, one repeat, a few frames.

Checks the structure of what it writes and that its mask checks work (the implementations agree with Meta's
to < 1e-3, and a flipped mask is caught), that every result records its provenance (commit, load, GEMM rate),
and the time / floor rule (a ratio below 1 is refused and the run marked contended) on constructed numbers.
No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `bench`

from bench.__main__ import add_floors, main
from bench.agreement import logit_agreement
from bench.common import machine_description
from bench.flops import FloorCheck
from bench.provenance import RunProvenance
from bench.report import REFUSED_RATIO, write_report
from bench.timing import HELD_THREADS, hold_threads, interleaved, timed

pytest.importorskip("transformers")
pytest.importorskip("sam2")
pytest.importorskip("matplotlib")

TOLERANCE = 1e-3


def test_agreement_catches_a_flipped_mask():
    logits = np.array([[2.0, -1.0], [0.5, -3.0]])
    flipped = logits.copy()
    flipped[0, 0] = -2.0
    check = logit_agreement(flipped, logits)
    assert check["sign_mismatch_pixels"] == 1 and check["max_abs_logit_diff"] == 4.0
    assert logit_agreement(logits, logits)["max_abs_logit_diff"] == 0.0


def test_floor_check_refuses_a_time_below_its_floor():
    """At 100 GFLOP/s, 200 GFLOP take 2 s: 3 s is 1.5x the floor (kept); 1.6 s would beat the floor, impossible,
    so the ratio is refused and the place named in the contended reason."""
    check = FloorCheck([90.0, 100.0, 250.0])  # the median is the rate
    kept = check.entry(2e11, 3.0, "video 1 object(s) meta")
    assert kept == {"gflop": 200.0, "floor_s": 2.0, "time_over_floor": 1.5}
    assert check.reasons() == []
    refused = check.entry(2e11, 1.6, "video 1 object(s) sam2_hf")
    assert refused == {"gflop": 200.0, "floor_s": 2.0, "time_over_floor": None}
    assert check.entry(2e11, 2.0, "at the floor")["time_over_floor"] == 1.0  # equal to the floor is possible
    (reason,) = check.reasons()
    assert "video 1 object(s) sam2_hf" in reason and "meta" not in reason and "100 GFLOP/s" in reason


def fake_video_suite(provenance: RunProvenance) -> dict:
    """A suite result with one video row timed by hand: at the floor section's 100 GFLOP/s, sam2_hf's 1.6 s for
    200 GFLOP beats its floor (2 s; refused) and Meta's 3 s is 1.5x it."""
    seconds = lambda s: {"median": s, "min": s, "max": s, "n": 1, "samples": [s]}
    flops = lambda total: {"total": total, "by_op": {}, "uncounted_heavy_ops": {}}
    agreement = {"max_abs_logit_diff": 0.0, "sign_mismatch_pixels": 0, "pixels": 4, "reference_foreground_pixels": 2}
    row = {"objects": 1, "timing": {"sam2_hf": {"seconds": seconds(1.6)}, "meta": {"seconds": seconds(3.0)}},
           "flops": {"sam2_hf": flops(2e11), "meta": flops(2e11)}, "timed_frames": [3],
           "agreement": {"sam2_hf": agreement, "meta": agreement}}  # fmt: skip
    attention = {"layer": "layer", "queries": 1, "memory_tokens": 1, "dim": 1, "kv_dim": 1, "ff_dim": 1, "counted": 1,
                 "hand_count": 1, "equal": True}  # fmt: skip
    return {
        "command": "python -m bench --sections video floor", "started": "then", "finished": "now", "wall_s": 60.0,
        "machine": machine_description(), "other_cores": {"video": 0.0},
        "settings": {"threads": provenance.record["threads"], "size": "tiny", "version": "2.1", "image_size": 128},
        "sections": {
            "video": {"settings": {"frame_hw": [2, 2], "warmup_frames": 1, "low_res": None}, "by_objects": [row]},
            "floor": {"gemm_n": 64, "gemm_gflops": seconds(100.0), "attention_check": attention},
        },
    }  # fmt: skip


def test_report_records_provenance_and_marks_a_time_below_its_floor_contended(tmp_path):
    provenance = RunProvenance(threads=1, gemm_n=64)
    suite = fake_video_suite(provenance)
    reasons = add_floors(suite["sections"])
    suite["provenance"] = provenance.finish(reasons)
    write_report(suite, tmp_path / "suite.md")
    report = (tmp_path / "suite.md").read_text()

    floors = suite["sections"]["video"]["by_objects"][0]["floor"]
    assert floors["sam2_hf"]["time_over_floor"] is None and floors["meta"]["time_over_floor"] == 1.5
    contended = suite["provenance"]["contended"]
    assert contended["contended"] and any("video 1 object(s) sam2_hf" in r for r in contended["reasons"])
    (sam2_hf_row,) = [line for line in report.splitlines() if line.startswith("| 1 | sam2_hf |")]
    (meta_row,) = [line for line in report.splitlines() if line.startswith("| 1 | Meta sam2 1.1.0 |")]
    assert REFUSED_RATIO in sam2_hf_row and "0.8" not in sam2_hf_row
    assert "| 1.5× |" in meta_row and REFUSED_RATIO not in meta_row
    assert "**Contended run**" in report and "video 1 object(s) sam2_hf" in report

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    record = suite["provenance"]
    assert record["code"]["commit"] == head and isinstance(record["code"]["dirty"], bool)
    assert [p["when"] for p in record["gemm"]["points"]] == ["start", "end"]
    assert all(p["gflops"]["median"] > 0 for p in record["gemm"]["points"]) and record["gemm"]["threads"] == 1
    assert len(record["load_average"]["start"]) == len(record["load_average"]["end"]) == 3
    for header in (
        f"Code: commit `{head[:12]}`",
        "Load: load average",
        "GEMM rate (fp32 64³ matmul, torch threads: 1;",
    ):
        assert header in report


@pytest.fixture
def restore_threads():
    """The suite runs with `--threads 1` (on a shared machine, threads that oversubscribe busy cores wait for
    each other and the run takes many times longer); torch's thread count is put back afterwards, and the count the
    bench held for its timed calls let go."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    HELD_THREADS.clear()


def test_timed_calls_run_on_the_held_thread_count(restore_threads):
    """A peer that sets torch's thread count (Ultralytics' select_device sets os.cpu_count() - 1 on its first call)
    does not slow the implementations timed after it: each timed call starts on the run's count."""
    held = torch.get_num_threads()
    other = 1 if held > 1 else 2
    hold_threads(held)
    timed(torch.set_num_threads, other)
    assert torch.get_num_threads() == other  # the peer's change happened...
    assert timed(torch.get_num_threads)[1] == held  # ...and the next timed call ran on the held count


def test_interleaved_times_only_the_calls_after_an_untimed_round():
    """A backend that compiles on its first call (torch.compile) does it in the untimed round, not in a sample."""
    order = []
    calls = {name: (lambda name=name: order.append(name) or len(order)) for name in ("a", "b")}
    samples, last = interleaved(calls, repeats=2)
    assert order == ["a", "b"] * 3  # one untimed round, then two timed ones, the implementations taking turns
    assert {name: len(values) for name, values in samples.items()} == {"a": 2, "b": 2}
    assert last == {"a": 5, "b": 6}


def test_suite_smoke(tmp_path, restore_threads):
    out = tmp_path / "results"
    main([
        "--image-size", "128", "--repeats", "1", "--objects", "1", "2", "--warmup-frames", "1",
        "--frame-size", "96", "128", "--batch-size", "2", "--low-res", "64", "--threads", "1", "--gemm-size", "512",
        "--workdir", str(tmp_path / "work"), "--out", str(out),
    ])  # fmt: skip
    suite = json.loads((out / "suite.json").read_text())
    assert (out / "suite.png").stat().st_size > 0
    report = (out / "suite.md").read_text()
    for title in ("## Image", "## Video", "## Floor", "## Memory", "## GPU", "python -m bench --image-size 128"):
        assert title in report
    sections = suite["sections"]
    assert set(sections) == {"image", "video", "floor", "memory", "gpu"}
    assert suite["machine"]["torch"] == torch.__version__.split("+")[0]
    gemm_points = [p["when"] for p in suite["provenance"]["gemm"]["points"]]
    assert gemm_points == ["start", "after image", "after video", "end"]
    assert "Code: commit" in report and "GEMM rate" in report

    image = sections["image"]
    for part in ("encoder", "click"):
        assert set(image[part]["timing"]) == {"sam2_hf", "meta", "transformers", "ultralytics"}
    assert set(image["batch"]["timing"]) == {"sam2_hf", "meta", "transformers"}  # Ultralytics has no batch API
    for part in ("encoder", "click", "batch"):
        assert image[part]["timing"]["sam2_hf"]["ratio_to_meta"]["n"] == 1
    for impl, check in image["click"]["agreement"].items():
        assert impl == "ultralytics" or check["max_abs_logit_diff"] < TOLERANCE, impl  # it letterboxes
        assert check["reference_foreground_pixels"] > 0  # not vacuous
    for part in ("encoder", "batch"):
        assert all(
            c["max_abs_embedding_diff"] < TOLERANCE for i, c in image[part]["agreement"].items() if i != "ultralytics"
        )
    assert image["encoder"]["flops"]["sam2_hf"]["total"] > 0

    video = sections["video"]
    assert [r["objects"] for r in video["by_objects"]] == [1, 2]
    for row in video["by_objects"]:
        assert set(row["timing"]) == {"sam2_hf", "meta", "transformers", "ultralytics", "sam2_hf@64"}
        assert row["agreement"]["ultralytics"]["max_abs_logit_diff"] is None  # binary masks only
        for impl in ("sam2_hf", "transformers"):
            assert row["agreement"][impl]["max_abs_logit_diff"] < TOLERANCE, (row["objects"], impl)
        assert row["agreement"]["meta"]["reference_foreground_pixels"] > 0
        assert len(row["low_res_iou"]["min_per_object"]) == row["objects"]
        assert all(f["total"] > 0 and not f["uncounted_heavy_ops"] for f in row["flops"].values())
    assert set(video["marginal_cost_per_object"]) == {"sam2_hf", "meta", "transformers", "ultralytics", "sam2_hf@64"}

    floor = sections["floor"]
    assert floor["attention_check"]["equal"] and floor["gemm_gflops"]["median"] > 0
    assert floor["uncounted_heavy_ops"] == {}
    assert sections["memory"]["measured"] and sections["memory"]["runs"]
    assert sections["gpu"]["measured"] == torch.cuda.is_available()


def test_memory_per_object_smoke(tmp_path, monkeypatch):
    """bench/memory_per_object.py at a toy size: every implementation x object count completes in its own process
    (the onnxruntime row's export made beforehand, not in its run), the per-object slopes are computed, and the
    exact rows' masks of every object match Meta's."""
    pytest.importorskip("onnxruntime")
    from bench.memory_per_object import main as memory_main

    monkeypatch.setenv("SAM2_HF_EXPORT_CACHE", str(tmp_path / "exports"))
    out = tmp_path / "results"
    memory_main(["--image-size", "128", "--height", "96", "--width", "128", "--frames", "3", "--objects", "1", "2",
                 "--backends", "onnxruntime", "--workdir", str(tmp_path / "work"), "--out", str(out)])  # fmt: skip
    data = json.loads((out / "memory_per_object.json").read_text())
    impls = ["sam2_hf-disk", "sam2_hf[onnxruntime]", "meta", "transformers"]
    assert data["implementations"] == impls
    assert sorted((r["impl"], r["objects"], r["status"]) for r in data["runs"]) == sorted(
        (impl, n, "ok") for impl in impls for n in (1, 2)
    )
    assert all(r["peak_rss_mib"] > r["rss_after_model_mib"] > 0 for r in data["runs"])
    assert all(v["peak_per_object_mib"] is not None for v in data["per_object"].values())
    checks = data["mask_check"]
    assert {(c["impl"], c["objects"]) for c in checks} == {(i, n) for i in impls if i != "meta" for n in (1, 2)}
    for c in checks:
        assert c["max_abs_logit_diff"] < TOLERANCE, c
        assert 0 < c["foreground_pixels_reference"] < c["pixels"] == c["objects"] * 96 * 128  # every object's masks
    assert "| sam2_hf[onnxruntime] |" in (out / "memory_per_object.md").read_text()


def test_finetune_bench_smoke(tmp_path, restore_threads):
    """`python -m bench.finetune` end to end at toy sizes: the learning section (and Meta's trainer beside ours
    where its undeclared dependencies submitit and fvcore are installed) writes its JSON, table and plot."""
    from bench.finetune import main as finetune_main

    pytest.importorskip("peft")
    sections = ["learn"]
    if all(importlib.util.find_spec(name) for name in ("submitit", "fvcore")):
        sections.append("timing")
    out = tmp_path / "results"
    finetune_main([
        "--sections", *sections, "--image-size", "64", "--data-size", "64", "--train-images", "2", "--train-clips",
        "1", "--val-images", "1", "--val-clips", "1", "--num-frames", "2", "--max-steps", "2", "--eval-steps", "1",
        "--logging-steps", "1", "--timed-steps", "1", "--warmup-steps", "1", "--threads", "1",
        "--workdir", str(tmp_path / "work"), "--out", str(out),
    ])  # fmt: skip
    result = json.loads((out / "finetune.json").read_text())
    learn = result["learn"]
    assert [e["step"] for e in learn["evaluations"]] == [0, 1, 2]
    assert set(learn["before"]) >= {"mIoU@1", "mIoU@5", "J&F"} and set(learn["after"]) == set(learn["before"])
    assert learn["loss"] and all(np.isfinite(h["loss"]) for h in learn["loss"])
    assert learn["train_items"] == {"images": 2, "clips": 1}
    report = (out / "finetune.md").read_text()
    assert "python -m bench.finetune --sections" in report and (out / "finetune.png").stat().st_size > 0
    assert [p["when"] for p in result["provenance"]["gemm"]["points"]] == ["start", "end"]
    assert "Code: commit" in report and "GEMM rate" in report
    if "timing" in sections:
        assert result["timing"]["ratio_sam2_hf_to_meta"] > 0
