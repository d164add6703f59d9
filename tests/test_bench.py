"""Smoke test of the benchmark suite (`python -m bench`): tiny model at image_size 128, one repeat, a few frames.

Checks the structure of what it writes and that its mask checks work (the implementations agree with Meta's
to < 1e-3, and a flipped mask is caught). No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `bench`

from bench.__main__ import main
from bench.agreement import logit_agreement

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


@pytest.fixture
def restore_threads():
    """The suite runs with `--threads 1` (on a shared machine, threads that oversubscribe busy cores wait for
    each other and the run takes many times longer); torch's thread count is put back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


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
    assert suite["machine"]["load_average_at_end"] and suite["machine"]["torch"] == torch.__version__.split("+")[0]

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
    if "timing" in sections:
        assert result["timing"]["ratio_sam2_hf_to_meta"] > 0
