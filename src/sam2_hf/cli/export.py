"""`sam2-hf export`: a SAM 2 model's graphs for an exported runtime (backends/export.py).

    sam2-hf export facebook/sam2.1-hiera-tiny --format onnx --out sam2.1-tiny-onnx/

then `Sam2VideoPredictor.from_pretrained("sam2.1-tiny-onnx/", backend="onnxruntime")` (or "openvino"), or
`sam2-hf track VIDEO --model sam2.1-tiny-onnx/ ...`. The graphs compute in float32 what the model computes.

    sam2-hf export facebook/sam2.1-hiera-tiny --format transformers.js --out sam2.1-tiny-js/

writes the image parts in the layout of the Hub's transformers.js repositories (backends/transformers_js.py), for
`Sam2Model.from_pretrained` / `AutoProcessor.from_pretrained` of `@huggingface/transformers` in Node.js or a browser.

    sam2-hf export facebook/sam2.1-hiera-tiny --format onnx --precision int8 --out sam2.1-tiny-int8/
    sam2-hf export facebook/sam2.1-hiera-tiny --format openvino --precision int8-static --calibration clip.mp4 --out D

write a lower-precision export (backends/precision.py: bf16, fp16, int8, int8-static), not exact: its agreement with
the exact masks on a clip is printed and stored in its export.json (tasks/lower_precision.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "openvino", "torch", "transformers.js")
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8-static")  # sam2_hf.backends.precision.PRECISIONS


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
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS,
        help="fp32: exact (default); not exact, opt-in: bf16 / fp16 (OpenVINO computes the graphs in that "
             "precision), int8 (dynamic, onnxruntime), int8-static (calibrated on --calibration; --format "
             "openvino: quantized by NNCF, run by OpenVINO; --format onnx: onnxruntime)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", default=None,
        help="int8-static: a video or a folder of frames like the ones the export will run on (the first 8 are used)",
    )  # fmt: skip
    parser.add_argument(
        "--check-clip", default=None,
        help="a lower-precision export's agreement with the exact masks is measured on this video or frame folder "
             "(default: --calibration, else a synthetic clip)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 2 nothing written (the message says why)."""
    from ..backends.export import export_model
    from ..backends.transformers_js import write_transformers_js
    from ..models.modeling import Sam2Model, Sam2VideoModel
    from ..tasks.lower_precision import export_lower_precision
    from .common import fail

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        return fail(f"--out {args.out} is not empty: pass --overwrite or another --out")
    kwargs = {"image_size": args.image_size} if args.image_size else {}
    js = args.format == "transformers.js"
    if args.precision != "fp32" and (js or args.format == "torch"):
        return fail(f"--precision {args.precision} is written as onnx or openvino, not {args.format}")
    if args.calibration and args.precision != "int8-static":
        return fail("--calibration is for --precision int8-static")
    if args.check_clip and args.precision == "fp32":
        return fail("--check-clip is for a lower --precision (bf16, fp16, int8, int8-static): fp32 is exact")
    image_only = args.image_only or js
    cls = Sam2Model if image_only else Sam2VideoModel
    try:
        model = cls.from_pretrained(args.model, **kwargs)
        if js:
            write_transformers_js(model, out)
        elif args.precision != "fp32":
            report = export_lower_precision(model, out, args.format, args.precision, args.calibration, args.check_clip)
        else:
            export_model(model, out, args.format)
    except (OSError, ValueError, ImportError) as e:
        return fail(f"cannot export {args.model}: {e}")
    parts = "image encoder, mask decoder" + ("" if image_only else ", memory attention, memory encoder")
    layout = " (transformers.js layout: onnx/vision_encoder.onnx, onnx/prompt_encoder_mask_decoder.onnx)" if js else ""
    precision = "" if args.precision == "fp32" else f", {args.precision} (not exact)"
    print(f"{out}: {args.format} graphs of {args.model} at {model.config.image_size} px ({parts}){layout}{precision}")
    if args.precision != "fp32":
        print(agreement_summary(report))
    return 0


def agreement_summary(report: dict) -> str:
    """One paragraph of a lower-precision export's agreement report (tasks/lower_precision.py)."""
    objects = ", ".join(
        f"{k}: {o['iou_mean']:.3f} ({o['exact_mask_pixels']} exact mask pixels)" for k, o in report["objects"].items()
    )  # an object whose exact masks are empty agrees trivially: its pixel count says so
    return (
        f"agreement with the exact masks on {report['clip']}, {report['prompts']}: IoU mean {report['iou_mean']:.3f}, "
        f"lowest {report['iou_min']:.3f} (per object {objects}); {report['pixels_of_other_sign']} of "
        f"{report['pixels']} pixels of other sign"
    )
