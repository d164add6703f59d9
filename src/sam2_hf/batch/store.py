"""A batch job's output folder; every file is written to a temporary name and renamed, so a file either is
complete or is not there:

    DIR/results/<key>.parquet   one row per (video id, object id, frame) of a finished video (`RESULT_SCHEMA`)
    DIR/partial/<key>.parquet   the same for the frames tracked before a video failed
    DIR/status/<key>.json       one video's outcome (`status` "done" or "failed"), written last
    DIR/status/<key>.attempts   times this run started the video (a worker that dies leaves it behind)
    DIR/job.json                the model (and its options) the results come from; another one is refused
    DIR/videos.parquet          every video's outcome, one row each (`VIDEO_SCHEMA`), rebuilt after each run
    DIR/failures.jsonl          one line per failed video: id, reason, the frame where it stopped
    DIR/videos/<key>/           `sam2-hf track`'s outputs (mask PNGs, masks.json, overlay.mp4) on request

A video whose status is "done" is finished: running the manifest again skips it. A failed one runs again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pycocotools.mask as mask_utils

from .manifest import VideoJob

DONE, FAILED = "done", "failed"
RESULT_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("obj_id", pa.int64()),
        ("frame", pa.int64()),
        ("height", pa.int32()),  # the COCO RLE's size
        ("width", pa.int32()),
        ("counts", pa.string()),  # the COCO RLE's counts (compressed string)
        ("score", pa.float32()),  # the object-score logit (> 0: the model judges the object present)
        ("box", pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1 in pixels around the mask; all 0 for an empty mask
        ("category", pa.string()),  # the detector's label (detector rows), else null
    ]
)
VIDEO_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("video", pa.string()), ("status", pa.string()), ("frames", pa.int64()),
        ("num_frames", pa.int64()), ("fps", pa.float64()), ("height", pa.int64()), ("width", pa.int64()),
        ("objects", pa.int64()), ("seconds", pa.float64()), ("reason", pa.string()), ("stopped_at", pa.int64()),
        ("attempts", pa.int64()), ("node", pa.string()), ("peak_rss_mib", pa.float64()),
    ]
)  # fmt: skip


def atomic_write(path: Path, write) -> Path:
    """Call `write(temporary_path)`, then rename the file to `path` (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def result_table(video_id: str, masklets, categories: Mapping | None = None) -> pa.Table:
    """A `Masklets`' masks as `RESULT_SCHEMA` rows, ordered by object then frame."""
    rows = {name: [] for name in RESULT_SCHEMA.names}
    for obj_id in masklets.obj_ids:
        for frame in masklets.frames(obj_id):
            rle = masklets.rles[obj_id][frame]
            x, y, w, h = mask_utils.toBbox(rle).tolist()
            for name, value in (
                ("video_id", video_id), ("obj_id", int(obj_id)), ("frame", int(frame)), ("height", rle["size"][0]),
                ("width", rle["size"][1]), ("counts", rle["counts"]),
                ("score", masklets.score(frame, obj_id)), ("box", [x, y, x + w, y + h]),
                ("category", (categories or {}).get(obj_id)),
            ):  # fmt: skip
                rows[name].append(value)
    return pa.table(rows, schema=RESULT_SCHEMA)


def read_results(path) -> dict:
    """A results Parquet file or folder -> {video_id: {obj_id: {frame: COCO RLE}}} (what `result_table` wrote)."""
    table = pq.read_table(path, schema=RESULT_SCHEMA)
    out: dict = {}
    for row in table.select(["video_id", "obj_id", "frame", "height", "width", "counts"]).to_pylist():
        rle = {"size": [row["height"], row["width"]], "counts": row["counts"]}
        out.setdefault(row["video_id"], {}).setdefault(row["obj_id"], {})[row["frame"]] = rle
    return out


class JobFolder:
    """The output folder of a batch job (see the module docstring); `root` is created on first write."""

    def __init__(self, root):
        self.root = Path(root)

    def results_path(self, job: VideoJob, partial: bool = False) -> Path:
        return self.root / ("partial" if partial else "results") / f"{job.key}.parquet"

    def formats_dir(self, job: VideoJob) -> Path:
        return self.root / "videos" / job.key

    def status_path(self, job: VideoJob) -> Path:
        return self.root / "status" / f"{job.key}.json"

    def status(self, job: VideoJob) -> dict | None:
        """The video's recorded outcome, or None when it has not finished or failed yet."""
        path = self.status_path(job)
        return json.loads(path.read_text()) if path.exists() else None

    def start_attempt(self, job: VideoJob) -> int:
        """Count one more start of the video in this run; returns the count (1 on the first start)."""
        path = self.status_path(job).with_suffix(".attempts")
        attempt = (int(path.read_text()) if path.exists() else 0) + 1
        atomic_write(path, lambda tmp: tmp.write_text(str(attempt)))
        return attempt

    def clear_attempts(self, jobs: Iterable[VideoJob]) -> None:
        for job in jobs:
            self.status_path(job).with_suffix(".attempts").unlink(missing_ok=True)

    def check_model(self, model: dict) -> None:
        """Record the job's model (name and loading options) on the first run; ValueError when a later run of
        the folder names another one, so results of two models never mix in one job folder."""
        path = self.root / "job.json"
        if path.exists():
            recorded = json.loads(path.read_text())
            if recorded != json.loads(json.dumps(model)):
                raise ValueError(f"{self.root} holds results of {recorded}, not {model}: use another output folder, "
                                 "or the same model to resume.")  # fmt: skip
            return
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(model, indent=1)))

    def finished(self, jobs: Iterable[VideoJob]) -> set[str]:
        """Ids of the videos already done (a failed video is not finished: it runs again)."""
        return {job.id for job in jobs if (self.status(job) or {}).get("status") == DONE}

    def write_results(self, job: VideoJob, table: pa.Table, partial: bool) -> Path | None:
        """The video's result rows, in results/ (done) or partial/ (failed; nothing when no frame was tracked);
        the other one is removed."""
        self.results_path(job, not partial).unlink(missing_ok=True)
        if partial and table.num_rows == 0:
            return None
        return atomic_write(self.results_path(job, partial), lambda tmp: pq.write_table(table, tmp))

    def clear_results(self, job: VideoJob) -> None:
        for partial in (False, True):
            self.results_path(job, partial).unlink(missing_ok=True)

    def write_status(self, job: VideoJob, record: Mapping) -> Path:
        """The video's outcome (written last: a video with a status has all its outputs written)."""
        attempts = (self.status(job) or {}).get("attempts", 0) + 1
        record = {**record, "id": job.id, "video": job.video, "attempts": attempts}
        return atomic_write(self.status_path(job), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))

    def summarize(self, jobs: Iterable[VideoJob]) -> dict:
        """Rewrite videos.parquet (every video with an outcome, in manifest order) and failures.jsonl; returns
        counts {"done", "failed", "left"} over `jobs`."""
        records, left = [], 0
        for job in jobs:
            record = self.status(job)
            if record is None:
                left += 1
            else:
                records.append({name: record.get(name) for name in VIDEO_SCHEMA.names})
        table = pa.Table.from_pylist(records, schema=VIDEO_SCHEMA)
        atomic_write(self.root / "videos.parquet", lambda tmp: pq.write_table(table, tmp))
        failed = [r for r in records if r["status"] == FAILED]
        lines = "".join(
            json.dumps({"id": r["id"], "reason": r["reason"], "stopped_at": r["stopped_at"],
                        "partial": r["frames"] > 0}) + "\n"
            for r in failed
        )  # fmt: skip
        atomic_write(self.root / "failures.jsonl", lambda tmp: tmp.write_text(lines))
        return {"done": len(records) - len(failed), "failed": len(failed), "left": left}
