"""Segment an object in an image from clicks and/or a box, and save the mask as a PNG overlay.

    python examples/segment_image.py --image photo.jpg --point 500,375
    python examples/segment_image.py --model sam2.1_hiera_tiny.pt --box 100,80,420,360
    python examples/segment_image.py --random-weights --point 260,200    # offline, no download

Without --image a synthetic picture of a few coloured shapes is used, so it runs without data.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from sam2_hf import Sam2Config, Sam2ImagePredictor, Sam2Model
from sam2_hf.processing.image_processing import to_rgb_uint8

MASK_COLOR = np.array([30, 144, 255])


def synthetic_image(width=640, height=480) -> Image.Image:
    """A soft gradient with a red disc, a blue rectangle and a green triangle."""
    ramp = np.linspace(200, 240, width, dtype=np.uint8)
    image = Image.fromarray(np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    draw.ellipse((170, 110, 350, 290), fill=(220, 40, 40))
    draw.rectangle((400, 250, 590, 420), fill=(40, 70, 200))
    draw.polygon([(80, 440), (180, 300), (280, 440)], fill=(40, 160, 60))
    return image


def parse_numbers(text: str, count: int, what: str) -> list[float]:
    values = [float(v) for v in text.replace(" ", "").split(",")]
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    return values


def load_predictor(args) -> Sam2ImagePredictor:
    if args.random_weights:
        torch.manual_seed(0)
        return Sam2ImagePredictor(Sam2Model(Sam2Config.from_size("tiny", image_size=512)).eval())
    if os.path.exists(args.model):  # a saved folder or one of Meta's .pt checkpoints
        return Sam2ImagePredictor.from_pretrained(args.model)
    if args.model.endswith(".pt"):
        sys.exit(f"No checkpoint file at {args.model!r}.")
    try:
        return Sam2ImagePredictor.from_pretrained(args.model)
    except OSError as error:  # huggingface_hub / transformers raise OSError subclasses when offline
        print(
            f"Could not download the model {args.model!r} from the Hugging Face Hub ({type(error).__name__}).\n"
            "Point --model at a local folder saved with save_pretrained() or at one of Meta's original "
            "checkpoints (e.g. --model sam2.1_hiera_tiny.pt), or pass --random-weights to try the "
            "pipeline offline with an untrained model.",
            file=sys.stderr,
        )
        sys.exit(2)


def save_overlay(image: np.ndarray, mask: np.ndarray, points, labels, box, path: str) -> None:
    blended = image.astype(np.float32)
    blended[mask] = 0.45 * blended[mask] + 0.55 * MASK_COLOR
    overlay = Image.fromarray(blended.round().astype(np.uint8))
    draw = ImageDraw.Draw(overlay)
    for (x, y), label in zip(points, labels):
        color = (0, 200, 0) if label == 1 else (230, 0, 0)
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=color, outline=(255, 255, 255), width=2)
    if box is not None:
        draw.rectangle(tuple(box), outline=(255, 200, 0), width=3)
    overlay.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="facebook/sam2.1-hiera-tiny", help="Hub id, local folder or Meta .pt file")
    parser.add_argument("--image", help="image path (default: a synthetic test image)")
    parser.add_argument("--point", action="append", default=[], metavar="X,Y", help="a click (repeatable)")
    parser.add_argument(
        "--label",
        action="append",
        type=int,
        default=[],
        choices=[0, 1],
        help="1 = foreground, 0 = background; one per --point (default 1)",
    )
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box prompt")
    parser.add_argument("--out", default="segmented.png", help="output PNG overlay")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="use an untrained tiny model (image size 512): runs offline, masks are meaningless",
    )
    args = parser.parse_args()

    try:  # sam2_hf's one image conversion: 16-bit and other wide images are refused by name, not clipped
        image = to_rgb_uint8(Image.open(args.image)) if args.image else np.array(synthetic_image())
    except (TypeError, ValueError) as e:
        parser.error(f"{args.image}: {e}")
    points = [parse_numbers(p, 2, "--point") for p in args.point]
    box = parse_numbers(args.box, 4, "--box") if args.box else None
    if not points and box is None:
        points = [[image.shape[1] / 2, image.shape[0] / 2]] if args.image else [[260, 200]]
    labels = args.label or [1] * len(points)
    if len(labels) != len(points):
        parser.error("give one --label per --point (or none for all foreground)")

    predictor = load_predictor(args)
    predictor.set_image(image)
    single_click = len(points) == 1 and box is None  # ambiguous: ask for 3 masks and keep the best
    masks, scores, _ = predictor.predict(
        point_coords=np.array(points) if points else None,
        point_labels=np.array(labels) if points else None,
        box=np.array(box) if box is not None else None,
        multimask_output=single_click,
    )
    best = int(np.argmax(scores))
    mask = np.asarray(masks[best]).astype(bool)
    save_overlay(image, mask, points, labels, box, args.out)
    print(f"mask {best}: predicted IoU {float(scores[best]):.3f}, {int(mask.sum())} pixels -> {args.out}")


if __name__ == "__main__":
    main()
