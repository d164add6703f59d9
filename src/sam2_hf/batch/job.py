"""Many videos on Ray: a manifest's rows go through an actor pool (one model per actor, loaded once) and each
video's outputs land in the job folder as it finishes.

    from sam2_hf.batch import track_many
    summary = track_many("videos.jsonl", "facebook/sam2.1-hiera-tiny", "out/", actors=2)

Ray runs here (`ray.init()` on this machine) unless `RAY_ADDRESS` names a cluster; one video is one Ray task,
so an actor that dies has its video retried (on the restarted actor or another one), up to `retries` times
before the video is a failure row.
Videos already done in `out` are skipped; failed ones run again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from .manifest import DETECTOR, VideoJob, read_manifest
from .store import FAILED, JobFolder

RETRIES = 2  # times a video whose actor died runs again before it becomes a failure row


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError(
            "Batch jobs run on Ray, which is not installed: pip install 'sam2-hf[batch]' (ray[data])."
        ) from e
    return ray


def connect():
    """The `ray` module, connected: Ray started on this machine, or joined at `RAY_ADDRESS`, unless running."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, configure_logging=False)
    return ray


def map_rows(rows: list[dict], worker_cls, worker_kwargs: dict, actors: int, cpus_per_actor: float = 1,
             gpus_per_actor: float = 0) -> Iterator[tuple[str, dict | None]]:  # fmt: skip
    """Run `worker_cls(**worker_kwargs)` (a `RowWorker`) over `rows` in a pool of up to `actors` Ray actors, one
    row per task; yield (row id, record) as rows finish, in any order, then (row id, None) for each row whose
    task Ray gave up on. A dead actor is restarted and its task retried (Ray Data's defaults); a worker caps
    its own attempts (`VideoWorker`). Starts Ray here (or joins `RAY_ADDRESS`) when it is not running."""
    ray = connect()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows one bar, in videos
    context.max_errored_blocks = -1  # a row whose task keeps failing is reported, the others go on
    context.actor_task_retry_on_errors = False  # a Python error is the worker's outcome, not a retry reason
    dataset = ray.data.from_items(rows, override_num_blocks=max(len(rows), 1)).map_batches(
        worker_cls,
        fn_constructor_kwargs=worker_kwargs,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(min(actors, len(rows)), 1)),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    seen = set()
    for out in dataset.iter_rows():
        seen.add(out["id"])
        yield out["id"], json.loads(out["record"])
    for row in rows:
        if row["id"] not in seen:
            yield row["id"], None


def track_many(
    manifest,
    model,
    out,
    actors: int = 1,
    image_size: int | None = None,
    device=None,
    formats=(),
    direction: str = "both",
    detector=None,
    labels=None,
    threshold=None,
    cpus_per_actor: float = 1,
    gpus_per_actor: float | None = None,
    retries: int = RETRIES,
    everything: dict | None = None,
    progress: bool = True,
    **model_kwargs,
) -> dict:
    """Track every video of `manifest` (see `manifest.read_manifest`) and write the results to `out`
    (`store.JobFolder`): results/ Parquet rows per (video, object, frame), videos.parquet, failures.jsonl.

    Args:
        manifest: a .jsonl / .csv / .parquet file, a `datasets.Dataset` or a Hub dataset id.
        model: Hub id, saved folder or `.pt`, loaded once per actor (a path must be readable on every node).
        out: the job folder; rerunning with the same folder skips finished videos and retries failed ones.
        actors: models run at once (CPU actors take `cpus_per_actor` CPUs and as many torch threads).
        image_size, device, model_kwargs: as `Sam2Tracker.from_pretrained` takes them.
        formats: `sam2-hf track` outputs also written per video into out/videos/<id>/ ("png", "rle", "overlay").
        direction: how prompted videos are tracked ("forward", "backward", "both").
        detector, labels, threshold: the object-detection model of "detector" rows (a Hub id or folder; labels
            for a zero-shot detector) and its score threshold.
        gpus_per_actor: GPUs per actor (default: 1 when the Ray cluster has GPUs, else 0); with GPUs and no
            `device`, the model runs on "cuda".
        retries: runs again of a video whose actor died, before it is a failure row.
        everything: options of "everything" rows (`VideoWorker`): new_objects_every, max_objects, ... and the
            automatic mask generator's (points_per_side, pred_iou_thresh, ...).
    Returns {"done", "failed", "left", "ran", "skipped", "frames", "seconds"} for this run. Raises ValueError
    for a bad manifest before anything runs; a video that fails is a row of failures.jsonl, never an exception.
    KeyboardInterrupt stops the job with every finished video written (run it again to resume).
    """
    _check_options(actors, formats, direction)
    jobs = read_manifest(manifest)
    if detector is None and any(job.prompts == DETECTOR for job in jobs):
        rows = [job.id for job in jobs if job.prompts == DETECTOR][:5]
        raise ValueError(f'rows {rows} ask for "detector" but the job has no detector (detector=..., --detector)')
    folder = JobFolder(out)
    folder.check_model({"model": str(model), "image_size": image_size, **model_kwargs})
    finished = folder.finished(jobs)
    pending = [job for job in jobs if job.id not in finished]
    kwargs = dict(model_kwargs, device=device)
    if image_size is not None:
        kwargs["image_size"] = image_size
    worker_kwargs = {
        "model": str(model),
        "out": str(folder.root.resolve()),
        "model_kwargs": kwargs,
        "formats": tuple(formats),
        "direction": direction,
        "detector": None if detector is None else str(detector),
        "labels": labels,
        "threshold": threshold,
        "threads": max(int(cpus_per_actor), 1),
        "everything": everything,
        "max_attempts": retries + 1,
    }
    from .worker import VideoWorker

    start, frames = time.perf_counter(), 0
    folder.clear_attempts(pending)  # attempts count within a run: an earlier run's interrupted videos start afresh
    try:
        if pending:
            gpus = _gpus_per_actor(gpus_per_actor)
            if gpus > 0 and device is None:
                worker_kwargs["model_kwargs"] = dict(kwargs, device="cuda")  # each actor holds (part of) a GPU
            results = map_rows([job.as_row() for job in pending], VideoWorker, worker_kwargs, actors,
                               cpus_per_actor, gpus)  # fmt: skip
            frames = _follow(results, {job.id: job for job in pending}, folder, progress)
    finally:
        counts = folder.summarize(jobs)
    seconds = time.perf_counter() - start
    return {**counts, "ran": len(pending), "skipped": len(finished), "frames": frames, "seconds": seconds}


def _check_options(actors: int, formats, direction: str) -> None:
    from ..media.writers import FORMATS
    from ..tasks.tracker import DIRECTIONS

    if actors < 1:
        raise ValueError(f"actors must be at least 1, got {actors}")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown formats {unknown}; choose from {list(FORMATS)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _gpus_per_actor(gpus_per_actor: float | None) -> float:
    if gpus_per_actor is not None:
        return gpus_per_actor
    ray = connect()
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _follow(results, jobs: dict[str, VideoJob], folder: JobFolder, progress: bool) -> int:
    """Consume the pool's results with a progress bar (videos done / failed / left, frames per second); a video
    Ray gave up on gets a failure record. Returns the frames processed."""
    done = failed = frames = 0
    start = time.perf_counter()
    with tqdm(total=len(jobs), desc="videos", unit="video", disable=not progress) as bar:
        for video_id, record in results:
            if record is None:
                record = {"status": FAILED, "reason": "Ray could not run it (its worker kept failing)",
                          "stopped_at": None, "frames": 0, "objects": 0}  # fmt: skip
                folder.write_status(jobs[video_id], record)
            failed += record["status"] == FAILED
            done += record["status"] != FAILED
            frames += record.get("frames") or 0
            bar.update()
            bar.set_postfix(done=done, failed=failed, fps=f"{frames / max(time.perf_counter() - start, 1e-9):.2f}")
    return frames


def run_vos_on_ray(
    model,
    base_video_dir,
    input_mask_dir,
    output_mask_dir,
    video_names=None,
    actors: int = 1,
    model_kwargs: dict | None = None,
    overwrite: bool = False,
    cpus_per_actor: float = 1,
    gpus_per_actor: float | None = None,
    progress: bool = True,
    **options,
) -> list[str]:
    """`evaluation.vos.run_vos_inference` with its sequences spread over `actors` Ray actors: the same folders
    written the same way (each sequence by `run_vos_sequence`), so scoring them gives the same numbers.

    model, model_kwargs: what each actor loads (`Sam2VideoPredictor.from_pretrained(model, **model_kwargs)`;
    give Meta's evaluation options, `vos_predictor_options`). options: `run_vos_sequence` keywords
    (score_thresh, use_all_masks, per_obj_png_file, track_object_appearing_later_in_video). Sequences whose
    output folder exists are skipped unless `overwrite`. Returns the sequences run; raises ValueError for
    folders that do not fit the layout (before running) and naming every sequence that failed (after the
    others are written).
    """
    from ..evaluation.layout import check_vos_folders, list_sequences
    from .worker import VosWorker

    names = list_sequences(base_video_dir) if video_names is None else list(video_names)
    check_vos_folders(base_video_dir, input_mask_dir, names, options.get("per_obj_png_file", False))
    todo = [name for name in names if overwrite or not (Path(output_mask_dir) / name).exists()]
    folders = {key: str(Path(value).resolve()) for key, value in
               (("base_video_dir", base_video_dir), ("input_mask_dir", input_mask_dir),
                ("output_mask_dir", output_mask_dir))}  # fmt: skip
    worker_kwargs = dict(model=str(model), model_kwargs=model_kwargs or {}, folders=folders, options=options,
                         threads=max(int(cpus_per_actor), 1))  # fmt: skip
    failures = []
    if todo:
        rows = [{"id": name} for name in todo]
        results = map_rows(rows, VosWorker, worker_kwargs, actors, cpus_per_actor, _gpus_per_actor(gpus_per_actor))
        for name, record in tqdm(results, total=len(todo), desc="VOS inference", unit="video", disable=not progress):
            if record is None or record["status"] == FAILED:
                failures.append(f"{name}: {record['reason'] if record else 'Ray could not run it'}")
    if failures:
        raise ValueError(f"{len(failures)} of {len(todo)} sequences failed:\n  " + "\n  ".join(failures))
    return todo
