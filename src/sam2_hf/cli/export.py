"""`sam2-hf export`: a SAM 2 model's graphs for an exported runtime (backends/export.py).

    sam2-hf export facebook/sam2.1-hiera-tiny --format onnx --out sam2.1-tiny-onnx/

then `Sam2VideoPredictor.from_pretrained("sam2.1-tiny-onnx/", backend="onnxruntime")` (or "openvino"), or
`sam2-hf track VIDEO --model sam2.1-tiny-onnx/ ...`. The graphs compute in float32 what the model computes.

    sam2-hf export facebook/sam2.1-hiera-tiny --format transformers.js --out sam2.1-tiny-js/

writes the image parts in the layout of the Hub's transformers.js repositories (backends/transformers_js.py), for
`Sam2Model.from_pretrained` / `AutoProcessor.from_pretrained` of `@huggingface/transformers` in Node.js or a browser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "openvino", "torch", "transformers.js")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sam2-hf export`."""
    parser.add_argument("model", help="a Hub id, a folder saved with save_pretrained, or a Meta / Ultralytics .pt")
    parser.add_argument(
        "--format", default="onnx", choices=FORMATS,
        help="onnx (ONNX Runtime or OpenVINO run it), openvino (OpenVINO IR), torch (torch.export .pt2 programs), "
             "transformers.js (the image parts as @huggingface/transformers loads them: onnx/*.onnx and configs)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="the folder to write (graphs, export.json, constants)")
    parser.add_argument("--image-size", type=int, default=None, help="model input size (default: the model's)")
    parser.add_argument(
        "--image-only", action="store_true",
        help="only the image encoder and mask decoder (always so for --format transformers.js)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="write into --out even if it holds files")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 2 nothing written (the message says why)."""
    from ..backends.export import export_model
    from ..backends.transformers_js import write_transformers_js
    from ..models.modeling import Sam2Model, Sam2VideoModel
    from .common import fail

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        return fail(f"--out {args.out} is not empty: pass --overwrite or another --out")
    kwargs = {"image_size": args.image_size} if args.image_size else {}
    js = args.format == "transformers.js"
    image_only = args.image_only or js
    cls = Sam2Model if image_only else Sam2VideoModel
    try:
        model = cls.from_pretrained(args.model, **kwargs)
        if js:
            write_transformers_js(model, out)
        else:
            export_model(model, out, args.format)
    except (OSError, ValueError, ImportError) as e:
        return fail(f"cannot export {args.model}: {e}")
    parts = "image encoder, mask decoder" + ("" if image_only else ", memory attention, memory encoder")
    layout = " (transformers.js layout: onnx/vision_encoder.onnx, onnx/prompt_encoder_mask_decoder.onnx)" if js else ""
    print(f"{out}: {args.format} graphs of {args.model} at {model.config.image_size} px ({parts}){layout}")
    return 0
