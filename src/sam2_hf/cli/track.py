"""`sam2-hf track`: follow objects through a video from clicks and boxes and write their masks:

    sam2-hf track clip.mp4 --point 0,210,350 --point 2:0,400,150 --box 3:5,10,20,200,220 --out results/

A prompt may start with `OBJ:` to name its object (default 1); points are FRAME,X,Y[,LABEL] with
label 1 (positive, default) or 0 (negative); boxes are FRAME,X0,Y0,X1,Y1; coordinates in pixels.
"""

from __future__ import annotations

import argparse

from ..media.writers import FORMATS, existing_outputs
from ..models.configuration import DEFAULT_MODEL
from ..tasks.tracker import DIRECTIONS, Sam2Tracker, TrackingError
from .common import (
    add_model_options,
    fail,
    merge_prompts,
    model_kwargs,
    out_of_image_prompts_refused,
    parse_box,
    parse_point,
    tracked_before,
)


def add_arguments(track: argparse.ArgumentParser) -> None:
    track.add_argument("video", help="video file (mp4, mov, webm, mkv, avi) or folder of JPEG/PNG frames")
    track.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or Meta .pt")
    track.add_argument("--point", action="append", type=parse_point, default=[], help="[OBJ:]FRAME,X,Y[,LABEL]")
    track.add_argument("--box", action="append", type=parse_box, default=[], help="[OBJ:]FRAME,X0,Y0,X1,Y1")
    track.add_argument("--direction", choices=DIRECTIONS, default="both")
    track.add_argument("--out", default="sam2_results", help="output folder")
    for name, output in FORMATS.items():
        track.add_argument(f"--no-{name}", action="store_true", help=f"skip {output.description}")
    track.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    add_model_options(track)


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 tracking stopped at an unreadable frame (the frames before it are written),
    2 nothing tracked (bad prompts, video, model or output folder; the message says which)."""
    prompts = merge_prompts(args.box + args.point)
    if not prompts:
        return fail("give at least one --point or --box")
    formats = [name for name in FORMATS if not getattr(args, f"no_{name}")]
    if not formats:
        return fail("nothing to write: leave out one of " + ", ".join(f"--no-{name}" for name in FORMATS))
    existing = [path.name for path in existing_outputs(args.out, formats)]
    if existing and not args.overwrite:
        return fail(f"{args.out} already holds results ({', '.join(existing)}): pass --overwrite or another --out")
    kwargs = model_kwargs(args)
    try:
        tracker = Sam2Tracker.from_pretrained(args.model, device=args.device, **kwargs)
    except OSError as e:
        return fail(
            f"could not load the model {args.model!r} ({e}).\n"
            "If you are offline, point --model at a local folder saved with save_pretrained or at a Meta .pt file."
        )
    except (ValueError, ImportError) as e:  # a backend that cannot run this model (the message names it)
        return fail(f"cannot run {args.model!r}: {e}")
    status = 0
    try:
        with out_of_image_prompts_refused():
            masklets = tracker.track(args.video, prompts, direction=args.direction)
    except TrackingError as e:
        masklets, status = tracked_before(e), 1
    except (ValueError, IndexError, FileNotFoundError) as e:  # the video, a frame or a prompt
        return fail(str(e))
    paths = masklets.save(args.video, args.out, formats, overwrite=args.overwrite)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return status
