"""What runs on one worker: a model loaded once, then one video (or one evaluation sequence) per call.

`VideoWorker` tracks a manifest row and writes its outputs (`store.JobFolder`); `VosWorker` runs one sequence of
`sam2-hf eval vos`. Both are plain classes — the Ray pipeline (`job.py`) makes them actors, and a loop calls
them the same way without Ray. A worker never raises for a bad video: the outcome is a status record.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch

from ..media.frames import open_frames
from .manifest import DETECTOR, EVERYTHING, VideoJob
from .store import DONE, FAILED, JobFolder, result_table


class RowWorker:
    """A worker as Ray Data calls it: `__call__` on a batch of rows (here one), returning each row's record
    as JSON; subclasses implement `run(row) -> dict`."""

    def __init__(self, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)

    def __call__(self, batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        records = [self.run({k: str(v) for k, v in row.items()}) for row in rows]
        return {"id": [row["id"] for row in rows], "record": [json.dumps(r) for r in records]}

    def run(self, row: dict) -> dict:
        raise NotImplementedError


class VideoWorker(RowWorker):
    """Tracks manifest rows with one `Sam2Tracker` and writes each video's results, formats and status.

    Args:
        model (`str`): Hub id, saved folder or Meta / Ultralytics `.pt` (as `Sam2Tracker.from_pretrained`).
        out (`str`): the job's output folder (`JobFolder`).
        model_kwargs (`dict`, *optional*): `Sam2Tracker.from_pretrained` keywords (image_size, backend, ...).
        formats (`tuple[str]`, *optional*, defaults to `()`): `sam2-hf track` outputs written per video.
        direction (`str`, *optional*, defaults to "both"): how prompted videos are tracked (`Sam2Tracker`).
        detector (`str`, *optional*): object-detection model (Hub id or folder) for "detector" rows.
        labels (`list[str]`, *optional*): text queries of a zero-shot detector.
        threshold (`float`, *optional*): the detector's score threshold.
        threads (`int`, *optional*): torch CPU threads of this worker.
        everything (`dict`, *optional*): options of "everything" rows: `Sam2Tracker.iter_track_everything`'s
            (new_objects_every, new_object_iou, max_objects) and `Sam2AutomaticMaskGenerator`'s (points_per_side,
            pred_iou_thresh, ...; Meta's defaults otherwise).
        max_attempts (`int`, *optional*, defaults to 3): starts of one video in a run (an actor that died on it
            is restarted and the video retried); one more start is a failure row instead of a run.
    """

    def __init__(self, model, out, model_kwargs=None, formats=(), direction="both", detector=None, labels=None,
                 threshold=None, threads=None, everything=None, max_attempts=3):  # fmt: skip
        super().__init__(threads)
        from ..tasks.tracker import Sam2Tracker

        self.tracker = Sam2Tracker.from_pretrained(model, **(model_kwargs or {}))
        self.folder = JobFolder(out)
        self.formats, self.direction = tuple(formats), direction
        self.detector_options = (detector, labels, threshold)
        self._detect = None  # the detector, built on the first "detector" row
        self.max_attempts = max_attempts
        self.everything = _everything_options(self.tracker, everything or {})

    def run(self, row: dict) -> dict:
        """Track one manifest row (`VideoJob` fields); returns the status record it wrote."""
        job = VideoJob(row["id"], row["video"], row["prompts"])
        start = time.perf_counter()
        attempt = self.folder.start_attempt(job)
        if attempt > self.max_attempts:
            reason = f"its worker died on each of {attempt - 1} attempts (out of memory, killed or crashed)"
            return self._finish(job, _failed(reason, None, 0) | {"objects": 0}, start)
        self.folder.clear_results(job)
        try:
            with _local_copy(job.video) as video:
                record, masklets, categories = self._track(job, video)
                if masklets is not None:
                    table = result_table(job.id, masklets, categories)
                    self.folder.write_results(job, table, record["status"] == FAILED)
                    if self.formats and masklets.processed:
                        masklets.save(video, self.folder.formats_dir(job), self.formats, overwrite=True)
        except Exception as e:  # (fetching a URL or writing the outputs failed: this video's failure row)
            record = _failed(f"{type(e).__name__}: {e}", None, 0) | {"objects": 0}
        return self._finish(job, record, start)

    def _finish(self, job: VideoJob, record: dict, start: float) -> dict:
        record["seconds"] = time.perf_counter() - start
        record["node"] = _node_id()
        record["peak_rss_mib"] = _peak_rss_mib()  # the worker process's peak so far (this video and those before)
        self.folder.write_status(job, record)
        self.folder.clear_attempts([job])
        return record

    def _track(self, job: VideoJob, video: str):
        """(status record, masklets or None, {obj_id: category}) of one video; failures become records."""
        from ..tasks.tracker import Masklets, TrackingError

        try:
            frames = open_frames(video)
        except Exception as e:  # (any unreadable video is a failure row, the job goes on)
            return _failed(f"cannot open the video: {type(e).__name__}: {e}", None, 0), None, {}
        record = {"num_frames": frames.num_frames, "fps": frames.fps, "height": frames.height, "width": frames.width}
        masklets = Masklets(frames.height, frames.width, frames.num_frames, frames.fps)
        categories = {}
        try:
            prompts = job.tracking_prompts()
            if prompts == DETECTOR:
                prompts, categories = self._detections(frames)
            if prompts == EVERYTHING:
                masklets = self.tracker.track(frames, None, progress=False, **self.everything)
            elif prompts:
                masklets = self.tracker.track(frames, prompts, self.direction, progress=False)
        except TrackingError as e:
            masklets = e.masklets
            record.update(_failed(f"{e.__cause__ or e}", e.frame_index, len(masklets.processed)))
        except Exception as e:  # (a bad prompt, frame or model error fails this video only)
            record.update(_failed(f"{type(e).__name__}: {e}", None, len(masklets.processed)))
            record["traceback"] = traceback.format_exc(limit=4)
        else:
            record.update(status=DONE, reason=None, stopped_at=None, frames=len(masklets.processed))
        finally:
            frames.close()
        record["objects"] = len(masklets.obj_ids)
        return record, masklets, categories

    def _detections(self, frames):
        """Prompts (one box per detected object on frame 0, ids 1, 2, ...) and {obj_id: category name}."""
        from ..processing.prompts import Prompt
        from ..tasks.annotate import pipeline_detections

        detector, labels, threshold = self.detector_options
        if detector is None:
            raise ValueError('a "detector" row needs the job\'s detector (track_many(detector=...), --detector)')
        if self._detect is None:
            self._detect = pipeline_detections(detector, labels, threshold)
        names, detect = self._detect
        found = detect(Path("frame-0"), frames.frame(0))
        prompts = [Prompt(0, i, box=box) for i, box in enumerate(found.boxes.tolist(), start=1)]
        return prompts, {i: names[int(c)] for i, c in enumerate(found.category_ids.tolist(), start=1)}


def _everything_options(tracker, options: dict) -> dict:
    """`Sam2Tracker.track` keywords of "everything" rows: the tracking options as given, the mask generator
    built from the others (TypeError naming an unknown one)."""
    from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator

    tracking = {k: options[k] for k in ("new_objects_every", "new_object_iou", "max_objects") if k in options}
    generator = {k: v for k, v in options.items() if k not in tracking}
    if generator:
        predictor = tracker.predictor
        tracking["generator"] = Sam2AutomaticMaskGenerator(predictor.model, backend=predictor.backend, **generator)
    return tracking


def _peak_rss_mib() -> float | None:
    """VmHWM of this process (its peak resident memory since it started), MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def _node_id() -> str | None:
    """The Ray node this worker runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except ImportError:
        return None


def _failed(reason: str, stopped_at, frames: int) -> dict:
    return {"status": FAILED, "reason": reason, "stopped_at": stopped_at, "frames": frames}


@contextlib.contextmanager
def _local_copy(video: str) -> Iterator[str]:
    """A local path for `video`: the path itself, or an fsspec URL downloaded into a temporary folder, which is
    removed on exit (also when the download fails)."""
    if "://" not in video:
        yield video
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="sam2_hf_video_", ignore_cleanup_errors=True) as folder:
        local = Path(folder) / Path(video.split("?")[0]).name
        with fsspec.open(video, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield str(local)


class VosWorker(RowWorker):
    """Runs sequences of `sam2-hf eval vos` (`run_vos_sequence`) with one predictor; rows are {"id": name}.

    Args:
        model (`str`): as `VideoWorker`. model_kwargs (`dict`): `Sam2VideoPredictor.from_pretrained` keywords
        (Meta's evaluation options included). folders (`dict`): `base_video_dir`, `input_mask_dir`,
        `output_mask_dir`. options (`dict`): `run_vos_sequence` keywords. threads (`int`): torch CPU threads.
    """

    def __init__(self, model, model_kwargs, folders, options, threads=None):
        super().__init__(threads)
        from ..predictors.video_predictor import Sam2VideoPredictor

        self.predictor = Sam2VideoPredictor.from_pretrained(model, **model_kwargs)
        self.folders, self.options = folders, options

    def run(self, row: dict) -> dict:
        from ..evaluation.vos import run_vos_sequence

        start = time.perf_counter()
        try:
            run_vos_sequence(self.predictor, name=row["id"], **self.folders, **self.options)
        except Exception as e:  # (reported by the driver, naming the sequence)
            return {"status": FAILED, "reason": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
        return {"status": DONE, "reason": None, "seconds": time.perf_counter() - start}
