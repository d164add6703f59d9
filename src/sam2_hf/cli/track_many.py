"""`sam2-hf track-many`: the videos of a manifest tracked on Ray actors, results as Parquet, resumable:

    sam2-hf track-many videos.jsonl --model facebook/sam2.1-hiera-tiny --out job/ --actors 2

The manifest has one row per video (`id`, `video`, `prompts`: a list of prompts, "everything" or "detector";
see `sam2_hf.batch.manifest`). Running the same command again skips finished videos and retries failed ones.
`RAY_ADDRESS` points it at a cluster. Exit status: 0 every video done, 1 some failed (failures.jsonl), 2 bad
input (nothing ran).
"""

from __future__ import annotations

import argparse

from ..media.writers import FORMATS
from ..models.configuration import DEFAULT_MODEL
from ..tasks.tracker import DIRECTIONS
from .common import add_model_options, fail, model_kwargs

RETRIES = 2  # sam2_hf.batch.job.RETRIES (not imported here: it would import the batch package when parsing)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="JSONL, CSV or Parquet file (or a Hub dataset id): id, video, prompts")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or .pt, readable on every node")
    parser.add_argument("--out", required=True, help="job folder: results/, videos.parquet, failures.jsonl")
    parser.add_argument("--actors", type=int, default=1, help="models run at once, one per Ray actor")
    parser.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs (and torch threads) per actor")
    parser.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 when the cluster has GPUs")
    parser.add_argument("--retries", type=int, default=RETRIES, help="runs again of a video whose actor died")
    parser.add_argument("--formats", nargs="*", default=[], choices=list(FORMATS),
                        help="also write `sam2-hf track`'s outputs per video into OUT/videos/<id>/")  # fmt: skip
    parser.add_argument("--direction", choices=DIRECTIONS, default="both", help="how prompted videos are tracked")
    parser.add_argument("--detector", default=None, help='object-detection model for "detector" rows')
    parser.add_argument("--labels", nargs="*", default=None, help="text queries of a zero-shot detector")
    parser.add_argument("--threshold", type=float, default=None, help="the detector's score threshold")
    parser.add_argument("--new-objects-every", type=int, default=None, help='"everything" rows: look for new objects '
                        "every K frames (default: frame 0 only)")  # fmt: skip
    parser.add_argument("--max-objects", type=int, default=None, help='"everything" rows: objects tracked at most')
    parser.add_argument("--points-per-side", type=int, default=None, help='"everything" rows: grid of points')
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..batch.job import track_many

    if args.actors < 1:
        return fail(f"--actors must be at least 1, got {args.actors}")
    names = ("new_objects_every", "max_objects", "points_per_side")
    everything = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        summary = track_many(
            args.manifest, args.model, args.out, actors=args.actors, device=args.device, formats=args.formats,
            direction=args.direction, detector=args.detector, labels=args.labels, threshold=args.threshold,
            cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor, retries=args.retries,
            everything=everything, **model_kwargs(args),
        )  # fmt: skip
    except (ValueError, FileNotFoundError, ImportError) as e:
        return fail(str(e))
    print(f"{summary['done']} done, {summary['failed']} failed, {summary['left']} left "
          f"({summary['ran']} run now, {summary['skipped']} already done); results: {args.out}")  # fmt: skip
    return 1 if summary["failed"] else 0
