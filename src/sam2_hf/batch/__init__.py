"""Batch jobs over many videos on Ray (the optional `batch` extra): `track_many` and `sam2-hf track-many`,
`sam2-hf eval vos --ray`. Layers: manifest (rows in) -> worker (one model, one video per call) -> store (the
job folder) -> job (the Ray pipeline). Ray is imported only when a job runs."""

from .job import track_many
from .manifest import VideoJob, read_manifest
from .store import RESULT_SCHEMA, JobFolder, read_results

__all__ = ["RESULT_SCHEMA", "JobFolder", "VideoJob", "read_manifest", "read_results", "track_many"]
