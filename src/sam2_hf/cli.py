"""`sam2-hf` command line. Subcommands are listed in `SUBCOMMANDS`; `track` (defined here) follows objects
through a video from clicks and boxes:

    sam2-hf track clip.mp4 --point 0,210,350 --point 2:0,400,150 --box 3:5,10,20,200,220 --out results/

A prompt may start with `OBJ:` to name its object (default 1); points are FRAME,X,Y[,LABEL] with
label 1 (positive, default) or 0 (negative); boxes are FRAME,X0,Y0,X1,Y1; coordinates in pixels.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import sys
import warnings

from .media.writers import FORMATS, existing_outputs
from .models.configuration import DEFAULT_MODEL
from .processing.prompts import OutOfImageWarning, Prompt
from .video.tracker import DIRECTIONS, Sam2Tracker, TrackingError


def _split_object(text: str):
    obj, _, rest = text.rpartition(":")
    try:
        return (int(obj) if obj else 1), [float(v) for v in rest.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot parse prompt {text!r}") from None


def parse_point(text: str) -> Prompt:
    obj, values = _split_object(text)
    if len(values) not in (3, 4):
        raise argparse.ArgumentTypeError(f"a point is [OBJ:]FRAME,X,Y[,LABEL]; got {text!r}")
    label = values[3] if len(values) == 4 else 1
    return _prompt(text, int(values[0]), obj, points=[values[1:3]], labels=[label])


def parse_box(text: str) -> Prompt:
    obj, values = _split_object(text)
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"a box is [OBJ:]FRAME,X0,Y0,X1,Y1; got {text!r}")
    return _prompt(text, int(values[0]), obj, box=values[1:])


def _prompt(text: str, *args, **kwargs) -> Prompt:
    """A `Prompt`, its validation errors reported as argparse errors naming the argument."""
    try:
        return Prompt(*args, **kwargs)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def merge_prompts(prompts: list[Prompt]) -> list[Prompt]:
    """All clicks (and the box) of one object on one frame become one prompt, as the model expects;
    ordered by object id, then frame."""
    merged: dict[tuple, Prompt] = {}
    for p in prompts:
        key = (p.frame, p.obj_id)
        m = merged.get(key)
        if m is None:
            merged[key] = p
            continue
        if p.box is not None:
            m = m.with_box(p.box)
        for (x, y), label in p.clicks:
            m = m.with_point(x, y, label)
        merged[key] = m
    return sorted(merged.values(), key=lambda m: (m.obj_id, m.frame))


@contextlib.contextmanager
def out_of_image_prompts_refused():
    """On the command line a typed coordinate outside the frame is a typo, not a choice: the library's
    `OutOfImageWarning` becomes a ValueError naming the coordinates (the commands report it and exit 2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfImageWarning)
        try:
            yield
        except OutOfImageWarning as e:
            raise ValueError(f"{e.where}: check the prompt's frame size") from None


def add_track_arguments(track: argparse.ArgumentParser) -> None:
    track.add_argument("video", help="video file (mp4, mov, webm, mkv, avi) or folder of JPEG/PNG frames")
    track.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or Meta .pt")
    track.add_argument("--point", action="append", type=parse_point, default=[], help="[OBJ:]FRAME,X,Y[,LABEL]")
    track.add_argument("--box", action="append", type=parse_box, default=[], help="[OBJ:]FRAME,X0,Y0,X1,Y1")
    track.add_argument("--direction", choices=DIRECTIONS, default="both")
    track.add_argument("--out", default="sam2_results", help="output folder")
    for name, output in FORMATS.items():
        track.add_argument(f"--no-{name}", action="store_true", help=f"skip {output.description}")
    track.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    track.add_argument("--device", default=None, help="e.g. cuda, cpu (default: the model's)")
    track.add_argument("--image-size", type=int, default=None, help="model input size for a Meta .pt (default 1024)")


def run_track(args: argparse.Namespace) -> int:
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
    kwargs = {"image_size": args.image_size} if args.image_size else {}
    try:
        tracker = Sam2Tracker.from_pretrained(args.model, device=args.device, **kwargs)
    except OSError as e:
        return fail(
            f"could not load the model {args.model!r} ({e}).\n"
            "If you are offline, point --model at a local folder saved with save_pretrained or at a Meta .pt file."
        )
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


# One row per subcommand: name -> (module defining it, one-line help). The module defines
# `add_arguments(parser)` and `run(args) -> int` (exit status); it is imported when the parser is built,
# so it keeps its own heavy imports inside `run`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "track": (__name__, "track objects through a video and write their masks"),
    "annotate": ("sam2_hf.annotate_cli", "label images with SAM 2 masks from detector boxes (COCO or YOLO-seg)"),
    "segment": ("sam2_hf.segment_cli", "masks for an image, image folder or video: prompted, or everything"),
    "eval": ("sam2_hf.evaluation.cli", "benchmarks: VOS J&F, click mIoU on images, interactive video (PVS)"),
    "finetune": ("sam2_hf.training.finetune", "fine-tune on your images and videos, evaluate, push to the Hub"),
    "convert": ("sam2_hf.convert_cli", "write a model in Meta's .pt format (sam2.build_sam.build_sam2 loads it)"),
}
_ENTRY_POINTS = {__name__: (add_track_arguments, run_track)}


def _entry_points(module_name: str):
    if module_name not in _ENTRY_POINTS:
        module = importlib.import_module(module_name)
        _ENTRY_POINTS[module_name] = (module.add_arguments, module.run)
    return _ENTRY_POINTS[module_name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-hf", description="SAM 2 for images and videos.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        add_arguments, _ = _entry_points(module_name)
        # No abbreviations: with every TrainingArguments field as an option, a prefix would silently pick one.
        add_arguments(sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False))
    return parser


def main(argv=None) -> int:
    """Runs one subcommand; its exit status (0 done, 2 bad input, the message on stderr saying which)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args.command, unknown)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the words given, e.g. to record or repeat the command
    _, run = _entry_points(SUBCOMMANDS[args.command][0])
    return run(args)


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Exit 2 naming the unknown options, the closest known ones and the subcommand's --help (its usage can
    list every TrainingArguments field, too long to print)."""
    subparser = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]
    known = [o for action in subparser._actions for o in action.option_strings]
    close = {o: difflib.get_close_matches(o, known, n=1) for o in unknown if o.startswith("-")}
    hints = "".join(f"; {o}: did you mean {m[0]}?" for o, m in close.items() if m)
    subparser.exit(2, f"{subparser.prog}: unrecognized arguments: {' '.join(unknown)}{hints} "
                      f"(`{subparser.prog} --help` lists the options)\n")  # fmt: skip


def tracked_before(error: TrackingError):
    """The masklets tracked before `error` stopped tracking, saying on stderr that they are written."""
    n = len(error.masklets.frames())
    print(f"sam2-hf: {error}; writing the {n} frame{'s' * (n != 1)} tracked before it.", file=sys.stderr)
    return error.masklets


def fail(message: str) -> int:
    print(f"sam2-hf: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
