"""The manifest of a batch job: one row per video, read from JSONL, CSV, Parquet or a `datasets` dataset.

Columns:
- `id`: the video's name in the outputs (unique; any text);
- `video`: a video file, a folder of frames, or an fsspec URL (`s3://...`, `gs://...`, `https://...`) of a
  video file; a relative path is relative to the manifest file's folder;
- `prompts`: what to track — a list of prompts, each a `sam2_hf.Prompt`'s fields (`frame`, `obj_id`,
  `points`, `labels`, `box`, `mask` as COCO RLE `{"size": [H, W], "counts": ...}`) in frame pixels (in a CSV
  cell or a Parquet string: that list as JSON); or `"everything"` (segment and track every object); or
  `"detector"` (the job's detector finds the objects on frame 0).

Every row is checked before any video runs; the errors name the row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..media.rle import decode_rle
from ..processing.prompts import Prompt

EVERYTHING, DETECTOR = "everything", "detector"
MODES = (EVERYTHING, DETECTOR)
COLUMNS = ("id", "video", "prompts")
PROMPT_FIELDS = ("frame", "obj_id", "points", "labels", "box", "mask")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class VideoJob:
    """One row of a manifest, checked. `prompts` is "everything", "detector" or the prompts as JSON (a list of
    `Prompt` field dicts), so a job travels as three strings."""

    id: str
    video: str  # a local path (absolute) or an fsspec URL
    prompts: str

    @property
    def key(self) -> str:
        """The video's file name stem in the outputs: the id where it is a safe file name, else a cleaned id
        with a hash of the id (distinct ids never share a key)."""
        if SAFE_NAME.fullmatch(self.id):
            return self.id
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", self.id).strip("._")[:80] or "video"
        return f"{cleaned}-{hashlib.sha1(self.id.encode()).hexdigest()[:10]}"

    def tracking_prompts(self) -> list[Prompt] | str:
        """The `Prompt`s to track, or the mode ("everything" / "detector")."""
        if self.prompts in MODES:
            return self.prompts
        return [prompt_from_record(record) for record in json.loads(self.prompts)]

    def as_row(self) -> dict:
        return {"id": self.id, "video": self.video, "prompts": self.prompts}


def prompt_from_record(record: Mapping) -> Prompt:
    """One prompt dict (the fields of `Prompt`, `mask` as COCO RLE) -> `Prompt`; ValueError naming what is wrong."""
    if not isinstance(record, Mapping):
        raise ValueError(f"a prompt is an object with fields {PROMPT_FIELDS}; got {record!r}")
    unknown = sorted(set(record) - set(PROMPT_FIELDS))
    if unknown:
        raise ValueError(f"unknown prompt fields {unknown}; a prompt has {PROMPT_FIELDS}")
    for name in ("frame", "obj_id"):
        if record.get(name) is None:
            raise ValueError(f"a video prompt needs `{name}`; got {dict(record)}")
    fields = {name: record.get(name) for name in PROMPT_FIELDS}
    if not isinstance(fields["obj_id"], int) or isinstance(fields["obj_id"], bool):
        raise ValueError(f"obj_id must be an integer; got {fields['obj_id']!r}")
    if fields["mask"] is not None:
        fields["mask"] = _rle_mask(fields["mask"])
    return Prompt(**fields)


def _rle_mask(rle):
    if not isinstance(rle, Mapping) or set(rle) != {"size", "counts"}:
        raise ValueError('a mask prompt is COCO RLE: {"size": [height, width], "counts": ...}')
    return decode_rle(dict(rle))


def read_manifest(manifest) -> list[VideoJob]:
    """Every row of `manifest` as a checked `VideoJob`.

    manifest: a `.jsonl`, `.csv` or `.parquet` file, a `datasets.Dataset`, or a Hugging Face Hub dataset id
    (its "train" split). Raises FileNotFoundError for a missing file, ValueError for an unknown file type,
    missing columns, duplicate ids, or rows whose prompts or video do not parse (listing the first
    `MAX_LISTED_ERRORS` such rows by line number and id).
    """
    rows, base = _read_rows(manifest)
    jobs, errors, seen = [], [], {}
    for line, row in enumerate(rows, start=1):
        try:
            job = _job(row, base)
        except (ValueError, TypeError) as e:
            errors.append(f"row {line} (id {row.get('id')!r}): {e}")
            continue
        if job.id in seen:
            errors.append(f"row {line}: id {job.id!r} already used by row {seen[job.id]}")
        seen.setdefault(job.id, line)
        jobs.append(job)
    if errors:
        more = f"\n  ... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        listed = "\n  ".join(errors[:MAX_LISTED_ERRORS])
        raise ValueError(f"{_name(manifest)}: {len(errors)} bad rows:\n  {listed}{more}")
    return jobs


def _name(manifest) -> str:
    return str(manifest) if isinstance(manifest, (str, Path)) else type(manifest).__name__


def _read_rows(manifest) -> tuple[list[dict], Path | None]:
    """The manifest's rows as dicts and the folder relative video paths start from (None: the working folder)."""
    if not isinstance(manifest, (str, Path)):
        if not hasattr(manifest, "column_names"):
            kind = type(manifest).__name__
            raise ValueError(f"a manifest is a .jsonl / .csv / .parquet file or a datasets.Dataset; got {kind}")
        _check_columns(manifest.column_names, _name(manifest))
        return [dict(row) for row in manifest], None
    path = Path(manifest)
    suffix = path.suffix.lower()
    if not path.exists():
        if suffix in (".jsonl", ".csv", ".parquet") or "/" not in str(manifest) or path.is_absolute():
            raise FileNotFoundError(f"manifest {manifest} not found")
        return _hub_rows(str(manifest))
    if suffix == ".jsonl":
        rows = _jsonl_rows(path)
        columns = set().union(*(row.keys() for row in rows)) if rows else set()
    elif suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), set(reader.fieldnames or ())
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        rows, columns = table.to_pylist(), set(table.column_names)
    else:
        got = suffix or "no suffix"
        raise ValueError(f"manifest {manifest}: expected a .jsonl, .csv or .parquet file, got {got!r}")
    _check_columns(columns, str(manifest))
    return rows, path.parent.resolve()


def _jsonl_rows(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file, one per non-empty line; ValueError naming the file and line of bad JSON."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"manifest {path}, line {number}: not JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"manifest {path}, line {number}: a row is a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _hub_rows(repo_id: str) -> tuple[list[dict], None]:
    import datasets

    dataset = datasets.load_dataset(repo_id, split="train")
    _check_columns(dataset.column_names, repo_id)
    return [dict(row) for row in dataset], None


def _check_columns(columns, name: str) -> None:
    missing = [c for c in COLUMNS if c not in set(columns)]
    if missing:
        raise ValueError(f"manifest {name} lacks the columns {missing}; a manifest has {COLUMNS} (one row per video)")


def _job(row: Mapping, base: Path | None) -> VideoJob:
    video_id, video, prompts = (row.get(c) for c in COLUMNS)
    if video_id is None or str(video_id) == "":
        raise ValueError("empty id")
    if not isinstance(video, str) or not video:
        raise ValueError(f"video must be a path or URL; got {video!r}")
    if "://" not in video and not Path(video).is_absolute():
        video = str((base or Path.cwd()) / video)
    if isinstance(prompts, str) and prompts.strip() not in MODES:
        try:
            prompts = json.loads(prompts)
        except json.JSONDecodeError:
            modes = f"{MODES[0]!r}, {MODES[1]!r}"
            raise ValueError(f"prompts must be {modes} or a JSON list of prompts; got {prompts[:80]!r}") from None
    if isinstance(prompts, str):
        return VideoJob(str(video_id), video, prompts.strip())
    if not isinstance(prompts, list) or not prompts:
        raise ValueError(f"prompts must be {MODES[0]!r}, {MODES[1]!r} or a non-empty list of prompts; got {prompts!r}")
    for record in prompts:
        prompt_from_record(record)  # every prompt checked here, before any video runs
    return VideoJob(str(video_id), video, json.dumps(prompts))
