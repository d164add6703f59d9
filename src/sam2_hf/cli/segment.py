"""`sam2-hf segment`: masks for an image, a folder of images or a video; with prompts the prompted objects,
without prompts everything (the automatic mask generator; in a video, every object tracked).

Examples:

    sam2-hf segment photo.jpg --point 0,210,350 --box 2:0,10,20,200,220 --out results/
    sam2-hf segment photos/ --out results/                       # everything, image by image
    sam2-hf segment clip.mp4 --new-objects-every 15 --out results/  # everything, tracked
    sam2-hf segment JPEGImages/bear --frames --out results/     # a folder of one video's frames, tracked

Prompts are written as for `sam2-hf track`: [OBJ:]INDEX,X,Y[,LABEL] and [OBJ:]INDEX,X0,Y0,X1,Y1, where
INDEX is the video frame, or the image's position in the folder (natural order; 0 for one image).
Outputs (the exports of `sam2-hf track`): for a video, `masks/<obj>/<frame>.png`, `masks.json` (COCO RLE)
and `overlay.mp4` in --out; for images, the same per image in `--out/<image stem>/`, with `overlay.png`.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from ..media.frames import IMAGE_SUFFIXES
from ..media.writers import FORMATS, existing_outputs
from ..models.configuration import DEFAULT_MODEL
from ..predictors.automatic_mask_generator import GENERATOR_ARGS
from ..tasks.segment import OVERLAY_IMAGE, save_image_results
from ..tasks.tracker import MAX_OBJECTS, TrackingError
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


def parse_option(text: str) -> tuple[str, object]:
    """NAME=VALUE, NAME an argument of `Sam2AutomaticMaskGenerator`, VALUE a Python literal."""
    name, _, value = text.partition("=")
    if name not in GENERATOR_ARGS or not value:
        raise argparse.ArgumentTypeError(f"an option is NAME=VALUE with NAME one of {', '.join(GENERATOR_ARGS)}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not a number, True/False or None") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sam2-hf segment` (see the module docstring)."""
    parser.add_argument("source", help="an image, a folder of images, or a video file")
    parser.add_argument("--frames", action="store_true", help="the folder is one video's frames: track, as a video")
    parser.add_argument("--point", action="append", type=parse_point, default=[], help="[OBJ:]INDEX,X,Y[,LABEL]")
    parser.add_argument("--box", action="append", type=parse_box, default=[], help="[OBJ:]INDEX,X0,Y0,X1,Y1")
    parser.add_argument("--out", default="sam2_results", help="output folder")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or Meta .pt")
    parser.add_argument("--option", action="append", type=parse_option, default=[],
                        help="mask generator argument NAME=VALUE for everything, e.g. points_per_side=16")  # fmt: skip
    parser.add_argument("--new-objects-every", type=int, default=None, help="video: generate every K frames")
    parser.add_argument("--max-objects", type=int, default=MAX_OBJECTS, help="video: objects tracked at most")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 2 bad input (source, prompts, model, output folder; the message says which)."""
    source = Path(args.source)
    if not source.exists():
        return fail(f"no image, folder or video at {source}")
    if args.frames and not source.is_dir():
        return fail(f"--frames takes a folder of a video's frames; {source} is a file")
    try:
        images = None if args.frames else _images(source)
    except ValueError as e:  # a folder without images
        return fail(str(e))
    out = Path(args.out)
    folders = [out / path.stem for path in images] if images else [out]
    taken = [str(f) for f in folders if existing_outputs(f) or (f / OVERLAY_IMAGE).exists()]
    if taken and not args.overwrite:
        return fail(f"{', '.join(taken[:3])} already hold results: pass --overwrite or another --out")
    prompts = merge_prompts(args.box + args.point)
    unknown = sorted({p.frame for p in prompts} - set(range(len(images)))) if images else []
    if unknown:
        return fail(f"a prompt for image {unknown[0]}, but there are {len(images)} images (0..{len(images) - 1})")
    kwargs = model_kwargs(args)
    try:
        with out_of_image_prompts_refused():
            if images:
                return _segment_images(args, images, prompts, folders, kwargs)
            return _segment_video(args, source, prompts, kwargs)
    except OSError as e:
        return fail(f"could not load the model {args.model!r} ({e})")
    except (ValueError, IndexError, ImportError) as e:  # a frame, an image, a prompt, or a backend
        return fail(str(e))


def _images(source: Path) -> list[Path] | None:
    """The images to segment one by one, or None for a video file."""
    from ..media.frames import ImageFolderFrames

    if source.is_dir():
        return list(ImageFolderFrames(source).files)
    return [source] if source.suffix.lower() in IMAGE_SUFFIXES else None


def _segment_video(args, source: Path, prompts, kwargs) -> int:
    from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
    from ..tasks.tracker import Sam2Tracker

    tracker = Sam2Tracker.from_pretrained(args.model, device=args.device, **kwargs)
    options = {}
    if not prompts:
        generator = Sam2AutomaticMaskGenerator(
            tracker.predictor.model, backend=tracker.predictor.backend, **dict(args.option)
        )
        options = dict(generator=generator, new_objects_every=args.new_objects_every, max_objects=args.max_objects)
    status = 0
    try:
        masklets = tracker.track(str(source), prompts or None, **options)
    except TrackingError as e:
        masklets, status = tracked_before(e), 1
    for name, path in masklets.save(str(source), args.out, tuple(FORMATS), overwrite=args.overwrite).items():
        print(f"{name}: {path}")
    return status


def _segment_images(args, images: list[Path], prompts, folders: list[Path], kwargs) -> int:
    """Each image on its own: prompts with INDEX = the image's position, or everything where none."""
    from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
    from ..predictors.image_predictor import Sam2ImagePredictor
    from ..tasks.annotate import read_image

    predictor = Sam2ImagePredictor.from_pretrained(args.model, device=args.device, **kwargs)
    generator = (
        None if prompts else Sam2AutomaticMaskGenerator(predictor.model, backend=predictor.backend, **dict(args.option))
    )
    for index, (path, folder) in enumerate(zip(images, folders)):
        image = read_image(path)
        if generator is not None:
            masks = {i: r["segmentation"] for i, r in enumerate(generator.generate(image), start=1)}
        else:
            masks = _prompted_masks(predictor, image, [p for p in prompts if p.frame == index])
        print(f"{path.name}: {len(masks)} masks -> {save_image_results(image, masks, folder, args.overwrite)}")
    return 0


def _prompted_masks(predictor, image, prompts) -> dict:
    """{obj_id: (H, W) bool} for one image's prompts (one mask per object, Meta's single-mask output)."""
    if not prompts:
        return {}
    predictor.set_image(image)
    masks = {}
    for p in prompts:
        mask, _, _ = predictor.predict(point_coords=p.points, point_labels=p.labels, box=p.box, multimask_output=False)
        masks[p.obj_id] = mask[0].astype(bool)
    return masks
