"""`sam2-hf annotate`: label a folder of images with SAM 2 masks from detector boxes (`sam2_hf.auto_annotate`).

Examples:

    sam2-hf annotate images/ --detector facebook/detr-resnet-50 --out annotations/
    sam2-hf annotate images/ --detector google/owlv2-base-patch16-ensemble --labels cat dog --format yolo
    sam2-hf annotate images/ --detector detections.json --out annotations/
"""

from __future__ import annotations

import argparse

from ..models.configuration import DEFAULT_MODEL
from ..tasks.annotate import ANNOTATION_FORMATS
from .common import add_model_options, model_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sam2-hf annotate` (those of `auto_annotate`, plus the SAM 2 model's loading)."""
    parser.add_argument("data", help="a folder of images (JPEG / PNG) or one image")
    parser.add_argument(
        "--detector",
        required=True,
        help="a transformers (zero-shot) object-detection model (Hub id or folder), a COCO detection JSON, "
        "or a folder of YOLO detection labels",
    )
    parser.add_argument("--labels", nargs="+", default=None, help="text queries for a zero-shot detector")
    parser.add_argument("--threshold", type=float, default=None, help="detector score threshold (default: its own)")
    parser.add_argument("--format", choices=ANNOTATION_FORMATS, default="coco", help="COCO instances or YOLO-seg")
    parser.add_argument("--out", default="annotations", help="output folder")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or Meta .pt")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 2 bad input (images, detector, labels, model; the message says which)."""
    from ..predictors.image_predictor import Sam2ImagePredictor
    from ..tasks.annotate import auto_annotate
    from .common import fail

    kwargs = model_kwargs(args)
    try:
        model = Sam2ImagePredictor.from_pretrained(args.model, device=args.device, **kwargs)
    except (OSError, ValueError, ImportError) as e:
        return fail(f"could not load the model {args.model!r} ({e}).")
    try:
        path = auto_annotate(args.data, args.detector, args.labels, args.out, args.format, model, args.threshold,
                             args.device)  # fmt: skip
    except (ValueError, OSError) as e:
        return fail(str(e))
    print(f"{args.format}: {path}")
    return 0
