"""Batch jobs (sam2_hf.batch, `sam2-hf track-many`, `sam2-hf eval vos --ray`): manifests checked row by row;
on local Ray with 2 CPUs, 5 generated videos (one corrupt mid-way) give 4 result sets equal to sequential
`Sam2Tracker` results and 1 failure row with its partial frames; a re-run redoes only the failure; an actor
killed mid-run still lets the job finish; a simulated 2-worker-node cluster reached through RAY_ADDRESS gives
the same results; eval vos on Ray writes the same masks and CSVs as the single-process run."""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="batch jobs need the batch extra: pip install 'sam2-hf[batch]'")
pq = pytest.importorskip("pyarrow.parquet")

from sam2_hf import Prompt, Sam2Tracker, TrackingError  # noqa: E402
from sam2_hf.batch import JobFolder, VideoJob, read_manifest, read_results, track_many  # noqa: E402
from sam2_hf.batch.worker import VideoWorker  # noqa: E402
from sam2_hf.cli import main  # noqa: E402
from sam2_hf.media.rle import decode_rle, encode_rle  # noqa: E402
from sam2_hf.media.synthetic import save_jpeg_folder, synthetic_clip  # noqa: E402
from sam2_hf.predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator  # noqa: E402

IMAGE_SIZE = 128
OBJECT_STORE = 150 * 1024**2  # per Ray node: rows and records are small, and CI machines' /dev/shm may be small
NUM_FRAMES = 10
BAD_VIDEO, BAD_FRAME = "v3 (corrupt)", 6
DISC, SQUARE = [[20, 29]], [[25, 67]]  # clicks on the red disc and the blue square of frame 0 (96 x 128)
# "everything" rows on random weights: a generator that keeps its few masks (tests/test_video_everything.py's)
EVERYTHING = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.05, stability_score_offset=0.05,
                  box_nms_thresh=1.0)  # fmt: skip


def _prompts(frames):
    """One row's prompts per video: clicks, two objects, a prompt on a later frame, a mask prompt."""
    disc_mask = np.zeros(frames[0].shape[:2], dtype=bool)
    disc_mask[20:38, 12:30] = True
    rle = encode_rle(disc_mask)  # {"size": [H, W], "counts": str}, JSON as it is
    return {
        "v0": [{"frame": 0, "obj_id": 1, "points": DISC, "labels": [1]}],
        "v1": [
            {"frame": 0, "obj_id": 1, "points": DISC, "labels": [1]},
            {"frame": 0, "obj_id": 2, "box": [10, 55, 40, 80]},
        ],
        "v2": [{"frame": 4, "obj_id": 7, "points": SQUARE, "labels": [1]}],
        BAD_VIDEO: [{"frame": 0, "obj_id": 1, "points": DISC, "labels": [1]}],
        "v4": [{"frame": 0, "obj_id": 3, "mask": rle}],
    }


@pytest.fixture(scope="module")
def checkpoint(reference_models):
    return str(reference_models("tiny", "2.1", IMAGE_SIZE, video=True).path)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """5 JPEG-folder videos (relative paths) in videos.jsonl; frame BAD_FRAME of BAD_VIDEO is truncated."""
    root = tmp_path_factory.mktemp("batch")
    rows = []
    for seed, (video_id, prompts) in enumerate(_prompts(synthetic_clip(1, 96, 128)).items()):
        folder = root / "videos" / f"clip{seed}"
        save_jpeg_folder(synthetic_clip(NUM_FRAMES, 96, 128, seed=seed), folder)
        if video_id == BAD_VIDEO:
            (folder / f"{BAD_FRAME:05d}.jpg").write_bytes(b"\xff\xd8 truncated")
        rows.append({"id": video_id, "video": f"videos/clip{seed}", "prompts": prompts})
    path = root / "videos.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@contextlib.contextmanager
def one_thread():
    """Torch on one thread, as each actor runs (cpus_per_actor=1): the same float summation order, the same bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sequential(checkpoint, manifest):
    """{video id: Masklets} of a plain Sam2Tracker loop over the manifest (TrackingError's masklets for the bad one)."""
    tracker = Sam2Tracker.from_pretrained(checkpoint, image_size=IMAGE_SIZE)
    out = {}
    with one_thread():
        for job in read_manifest(manifest):
            try:
                out[job.id] = tracker.track(job.video, job.tracking_prompts(), progress=False)
            except TrackingError as e:
                out[job.id] = e.masklets
    return out


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, object_store_memory=OBJECT_STORE, include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # fmt: skip
    yield
    ray.shutdown()


def check_equal_to_sequential(results: dict, masklets) -> None:
    """The job's rows of one video hold the same masks (and object scores) as the sequential masklets."""
    assert set(results) == set(masklets.obj_ids)
    for obj_id, frames in results.items():
        assert sorted(frames) == masklets.frames(obj_id)
        for frame, rle in frames.items():
            assert np.array_equal(decode_rle(rle), masklets.mask(frame, obj_id)), (obj_id, frame)


def check_nontrivial(masklets) -> None:
    """Objects found on most frames with masks that are neither empty nor the whole frame, and that move."""
    for obj_id in masklets.obj_ids:
        areas = [masklets.area(t, obj_id) for t in masklets.frames(obj_id)]
        found = [a for a in areas if 0 < a < 0.5 * masklets.height * masklets.width]
        assert len(found) >= len(areas) // 2, (obj_id, areas)
        assert len(set(found)) > 1, (obj_id, areas)


def check_job(out, manifest, sequential) -> None:
    results = read_results(out / "results")
    good = [job.id for job in read_manifest(manifest) if job.id != BAD_VIDEO]
    assert sorted(results) == sorted(good)
    for video_id in good:
        check_nontrivial(sequential[video_id])
        check_equal_to_sequential(results[video_id], sequential[video_id])
    table = pq.read_table(out / "results").to_pylist()
    for row in table:
        assert row["score"] == pytest.approx(sequential[row["video_id"]].score(row["frame"], row["obj_id"]), abs=1e-5)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["id"], f["stopped_at"], f["partial"]) for f in failures] == [(BAD_VIDEO, BAD_FRAME, True)]
    partial = read_results(out / "partial")
    assert list(partial) == [BAD_VIDEO]
    check_equal_to_sequential(partial[BAD_VIDEO], sequential[BAD_VIDEO])
    assert sequential[BAD_VIDEO].frames() == list(range(BAD_FRAME))
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert [v["id"] for v in videos] == [job.id for job in read_manifest(manifest)]
    for v in videos:
        assert (v["status"], v["frames"]) == (("failed", BAD_FRAME) if v["id"] == BAD_VIDEO else ("done", NUM_FRAMES))
        assert (v["height"], v["width"], v["num_frames"]) == (96, 128, NUM_FRAMES)


# ------------------------------------------------------------------------------------------- manifests
def test_manifest_formats_read_the_same_jobs(manifest, tmp_path):
    """JSONL, CSV (prompts as JSON text) and Parquet give the same jobs; relative videos start at the manifest."""
    import csv

    import pyarrow as pa

    jobs = read_manifest(manifest)
    assert jobs[0].video == str(manifest.parent / "videos" / "clip0")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        row["video"] = str(manifest.parent / row["video"])
        row["prompts"] = json.dumps(row["prompts"])
    with (tmp_path / "m.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "video", "prompts"])
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    assert read_manifest(tmp_path / "m.csv") == jobs
    assert read_manifest(tmp_path / "m.parquet") == jobs
    assert jobs[3].key != jobs[3].id and "/" not in jobs[3].key and jobs[0].key == "v0"
    prompt = jobs[4].tracking_prompts()[0]
    assert isinstance(prompt, Prompt) and prompt.mask.shape == (96, 128) and prompt.mask.sum() == 18 * 18


def test_bad_manifests_name_the_rows(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"id": "a", "video": "a.mp4", "prompts": "everything"},
        {"id": "a", "video": "b.mp4", "prompts": "detector"},
        {"id": "c", "video": "c.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[1, 2]]}]},
        {"id": "d", "video": "d.mp4", "prompts": [{"obj_id": 1, "box": [0, 0, 5, 5]}]},
        {"id": "e", "video": "e.mp4", "prompts": [{"frame": 0, "obj_id": 1, "box": [0, 0, 5, 5], "color": 1}]},
        {"id": "f", "video": "f.mp4", "prompts": "all of them"},
        {"id": "g", "video": "g.mp4", "prompts": []},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError) as error:
        read_manifest(path)
    message = str(error.value)
    assert "6 bad rows" in message
    parts = ["row 2: id 'a' already used by row 1", "row 3 (id 'c')", "labels", "row 4 (id 'd')", "needs `frame`",
                "unknown prompt fields ['color']", "row 6 (id 'f')", "row 7 (id 'g')"]  # fmt: skip
    for part in parts:
        assert part in message
    (tmp_path / "cols.jsonl").write_text(json.dumps({"id": "a", "path": "a.mp4"}) + "\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['video', 'prompts'\]"):
        read_manifest(tmp_path / "cols.jsonl")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_manifest(tmp_path / "missing.jsonl")
    (tmp_path / "json.jsonl").write_text(json.dumps(rows[0]) + "\n" + '{"id": "b", video: "b.mp4"}\n')
    with pytest.raises(ValueError, match=r"json.jsonl, line 2: not JSON"):
        read_manifest(tmp_path / "json.jsonl")
    with pytest.raises(ValueError, match=r"expected a .jsonl, .csv or .parquet file, got '.txt'"):
        (tmp_path / "m.txt").write_text("x")
        read_manifest(tmp_path / "m.txt")


def test_jobs_refuse_before_running_what_cannot_run(checkpoint, manifest, tmp_path):
    """Refused before Ray starts: "detector" rows without a detector; a job folder made with another model."""
    rows = tmp_path / "detector.jsonl"
    rows.write_text(json.dumps({"id": "d", "video": "d.mp4", "prompts": "detector"}) + "\n")
    with pytest.raises(ValueError, match=r"rows \['d'\] ask for \"detector\" but the job has no detector"):
        track_many(rows, checkpoint, tmp_path / "job", image_size=IMAGE_SIZE)
    JobFolder(tmp_path / "job").check_model({"model": "other-model", "image_size": IMAGE_SIZE})
    with pytest.raises(ValueError, match="holds results of .*other-model.* use another output folder"):
        track_many(manifest, checkpoint, tmp_path / "job", image_size=IMAGE_SIZE)
    assert not ray.is_initialized()


def test_worker_without_ray_writes_a_failure_row_for_a_missing_video(checkpoint, tmp_path):
    worker = VideoWorker(checkpoint, tmp_path / "out", {"image_size": IMAGE_SIZE})
    record = worker.run({"id": "gone", "video": str(tmp_path / "gone.mp4"), "prompts": "everything"})
    assert record["status"] == "failed" and "gone.mp4" in record["reason"] and record["frames"] == 0
    assert record["node"] is None and record["peak_rss_mib"] > 100  # not on Ray; torch and the model in memory
    job = VideoJob("gone", str(tmp_path / "gone.mp4"), "everything")
    assert JobFolder(tmp_path / "out").status(job) == {**record, "id": "gone", "video": job.video, "attempts": 1}
    url = (tmp_path / "gone.mp4").as_uri()
    record = worker.run({"id": "gone-url", "video": url, "prompts": "everything"})
    assert record["status"] == "failed" and "FileNotFoundError" in record["reason"] and "gone.mp4" in record["reason"]


def test_worker_everything_and_detector_rows(checkpoint, manifest, detector, tmp_path):
    """The worker's "everything" rows are Sam2Tracker.track(video) without prompts; "detector" rows track one
    object per box the job's detector finds on frame 0, with its category."""
    video = read_manifest(manifest)[0].video
    detector.save_pretrained(tmp_path / "detr")
    worker = VideoWorker(checkpoint, tmp_path / "out", {"image_size": IMAGE_SIZE}, detector=str(tmp_path / "detr"),
                         threshold=0.0, everything=EVERYTHING | {"new_objects_every": 4})  # fmt: skip
    with one_thread():
        everything = worker.run({"id": "all", "video": video, "prompts": "everything"})
        detected = worker.run({"id": "det", "video": video, "prompts": "detector"})
        tracker = Sam2Tracker.from_pretrained(checkpoint, image_size=IMAGE_SIZE)
        generator = Sam2AutomaticMaskGenerator(tracker.predictor.model, **EVERYTHING)
        expected = tracker.track(video, None, progress=False, generator=generator, new_objects_every=4)
    assert everything["status"] == "done" and everything["objects"] == len(expected.obj_ids) > 1
    check_equal_to_sequential(read_results(tmp_path / "out" / "results" / "all.parquet")["all"], expected)

    assert detected["status"] == "done" and detected["objects"] > 0
    from sam2_hf.tasks.annotate import pipeline_detections

    categories, detect = pipeline_detections(str(tmp_path / "detr"), None, 0.0)
    found = detect(None, synthetic_clip(NUM_FRAMES, 96, 128, seed=0)[0])
    rows = pq.read_table(tmp_path / "out" / "results" / "det.parquet").to_pylist()
    assert {r["obj_id"] for r in rows} == set(range(1, len(found.boxes) + 1))
    names = {i: categories[int(c)] for i, c in enumerate(found.category_ids.tolist(), start=1)}
    assert all(r["category"] == names[r["obj_id"]] for r in rows)
    worker.detector_options = (None, None, None)
    worker._detect = None
    failed = worker.run({"id": "nodet", "video": video, "prompts": "detector"})
    assert failed["status"] == "failed" and "needs the job's detector" in failed["reason"]


def test_datasets_manifest_and_fsspec_video_urls(checkpoint, manifest, tmp_path):
    """A `datasets.Dataset` is a manifest; a video given as an fsspec URL (file:// here; s3://, gs://, https://
    the same way) is fetched into a temporary file and tracked as the local file is."""
    import datasets
    from space.video import write_mp4

    clip = write_mp4(synthetic_clip(NUM_FRAMES, 96, 128, seed=0), tmp_path / "clip.mp4")
    prompts = json.dumps([{"frame": 0, "obj_id": 1, "points": DISC, "labels": [1]}])
    rows = [{"id": "url", "video": Path(clip).resolve().as_uri(), "prompts": prompts},
            {"id": "local", "video": str(clip), "prompts": prompts}]  # fmt: skip
    jobs = read_manifest(datasets.Dataset.from_list(rows))
    assert [job.video for job in jobs] == [row["video"] for row in rows]
    worker = VideoWorker(checkpoint, tmp_path / "out", {"image_size": IMAGE_SIZE})
    records = [worker.run(job.as_row()) for job in jobs]
    assert [(r["status"], r["frames"]) for r in records] == [("done", NUM_FRAMES)] * 2
    results = read_results(tmp_path / "out" / "results")
    check_nontrivial_rles(results["url"][1], 96 * 128)
    assert results["url"] == results["local"]


def test_a_video_url_that_cannot_be_fetched_leaves_no_temporary_folder(checkpoint, tmp_path, monkeypatch):
    """The download's temporary folder is removed when the download itself fails (it was left behind, empty)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    prompts = json.dumps([{"frame": 0, "obj_id": 1, "points": DISC, "labels": [1]}])
    worker = VideoWorker(checkpoint, tmp_path / "out", {"image_size": IMAGE_SIZE})
    record = worker.run({"id": "gone", "video": (tmp_path / "gone.mp4").as_uri(), "prompts": prompts})
    assert record["status"] == "failed" and "FileNotFoundError" in record["reason"], record
    assert not any((tmp_path / "tmp").iterdir())


def check_nontrivial_rles(frames: dict, pixels: int) -> None:
    import pycocotools.mask as mask_utils

    areas = [int(mask_utils.area(rle)) for rle in frames.values()]
    assert sum(0 < a < pixels // 2 for a in areas) >= len(areas) // 2, areas


# ------------------------------------------------------------------------------------------- on Ray
def test_job_on_local_ray_equals_sequential_tracking_and_resumes(local_ray, checkpoint, manifest, sequential, tmp_path):
    out = tmp_path / "job"
    summary = track_many(manifest, checkpoint, out, actors=2, image_size=IMAGE_SIZE, formats=["rle"], progress=False)
    assert (summary["done"], summary["failed"], summary["left"], summary["ran"]) == (4, 1, 0, 5)
    check_job(out, manifest, sequential)
    assert json.loads((out / "videos" / "v1" / "masks.json").read_text())["frames"]  # per-video outputs on request
    done_files = {p: p.stat().st_mtime_ns for p in (out / "status").glob("v[0-2].json")}

    again = track_many(manifest, checkpoint, out, actors=2, image_size=IMAGE_SIZE, progress=False)
    assert (again["ran"], again["skipped"], again["done"], again["failed"]) == (1, 4, 4, 1)  # only the failure runs
    assert {p: p.stat().st_mtime_ns for p in done_files} == done_files
    bad = next(job for job in read_manifest(manifest) if job.id == BAD_VIDEO)
    assert JobFolder(out).status(bad)["attempts"] == 2
    check_job(out, manifest, sequential)


def _worker_pids() -> list[int]:
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "VideoWorker" in cmdline or "MapWorker" in cmdline:
            pids.append(process.info["pid"])
    return pids


def test_a_killed_actor_does_not_stop_the_job(local_ray, checkpoint, manifest, sequential, tmp_path):
    import os
    import signal

    out = tmp_path / "job"
    result = {}
    job = threading.Thread(
        target=lambda: result.update(
            track_many(manifest, checkpoint, out, actors=2, image_size=IMAGE_SIZE, progress=False)
        )
    )
    job.start()
    deadline = time.monotonic() + 300
    while not list((out / "status").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the first video is done: the actors are loaded and tracking the next ones
    pids = _worker_pids()
    assert pids, "no Ray actor process found to kill"
    os.kill(pids[0], signal.SIGKILL)
    job.join(timeout=600)
    assert not job.is_alive()
    assert (result["done"], result["failed"], result["left"]) == (4, 1, 0)
    check_job(out, manifest, sequential)


def test_simulated_cluster_through_ray_address(checkpoint, manifest, sequential, tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "include_dashboard": False, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        out = tmp_path / "job"
        summary = track_many(manifest, checkpoint, out, actors=2, image_size=IMAGE_SIZE, progress=False)
        workers = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")}
        assert len(workers) == 2
        used = {v["node"] for v in pq.read_table(out / "videos.parquet").to_pylist()}
        assert used == workers  # one actor on each worker node (the head has no CPU to give)
        assert (summary["done"], summary["failed"]) == (4, 1)
        check_job(out, manifest, sequential)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_track_many_cli(local_ray, checkpoint, manifest, sequential, tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["track-many", str(manifest), "--model", checkpoint, "--image-size", str(IMAGE_SIZE),
                   "--out", str(out), "--actors", "2"])  # fmt: skip
    assert status == 1  # one video failed
    assert "4 done, 1 failed, 0 left" in capsys.readouterr().out
    check_job(out, manifest, sequential)
    assert main(["track-many", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2
    assert "none.jsonl not found" in capsys.readouterr().err


def test_eval_vos_on_ray_writes_the_same_masks_and_scores(local_ray, video_reference, davis_folder, tmp_path):
    """On the content-bearing weights (random ones score J&F ~0: nothing to compare)."""
    reference = video_reference("2.1", content=True)
    common = ["eval", "vos", "--model", str(reference.path), "--image-size", str(reference.image_size),
              "--base-video-dir", str(davis_folder / "JPEGImages"), "--input-mask-dir",
              str(davis_folder / "Annotations")]  # fmt: skip
    with one_thread():
        assert main([*common, "--output-mask-dir", str(tmp_path / "one")]) == 0
    assert main([*common, "--output-mask-dir", str(tmp_path / "ray"), "--ray", "--actors", "2"]) == 0
    pngs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert pngs and pngs == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.png"))
    from PIL import Image

    some_object = False
    for name in pngs:
        a, b = np.asarray(Image.open(tmp_path / "one" / name)), np.asarray(Image.open(tmp_path / "ray" / name))
        assert np.array_equal(a, b), name
        some_object |= bool(a.any())
    assert some_object
    csvs = sorted(p.name for p in (tmp_path / "one").glob("*.csv"))
    assert csvs
    global_jf = float((tmp_path / "one" / "global_results-val.csv").read_text().splitlines()[1].split(",")[0])
    assert global_jf > 0.3  # the compared path tracks
    for name in csvs:
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "ray" / name).read_text()
