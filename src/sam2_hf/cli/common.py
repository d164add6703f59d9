"""What the subcommands share: prompt options parsed into `Prompt`s (FRAME,X,Y[,LABEL] points, FRAME,X0,Y0,X1,Y1
boxes, an optional `OBJ:` prefix), out-of-image coordinates refused, and the one way to fail (exit 2, message on
stderr)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..processing.prompts import OutOfImageWarning, Prompt

if TYPE_CHECKING:
    from ..tasks.tracker import TrackingError


def _split_object(text: str):
    obj, _, rest = text.rpartition(":")
    try:
        return (int(obj) if obj else 1), [float(v) for v in rest.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot parse prompt {text!r}") from None


FRAME_INDEX = "FRAME: the frame or image index, 0 for one image"


def parse_point(text: str) -> Prompt:
    obj, values = _split_object(text)
    if len(values) not in (3, 4):
        raise argparse.ArgumentTypeError(f"a point is [OBJ:]FRAME,X,Y[,LABEL] ({FRAME_INDEX}); got {text!r}")
    label = values[3] if len(values) == 4 else 1
    return _prompt(text, int(values[0]), obj, points=[values[1:3]], labels=[label])


def parse_box(text: str) -> Prompt:
    obj, values = _split_object(text)
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"a box is [OBJ:]FRAME,X0,Y0,X1,Y1 ({FRAME_INDEX}); got {text!r}")
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


def tracked_before(error: TrackingError):
    """The masklets tracked before `error` stopped tracking, saying on stderr that they are written."""
    n = len(error.masklets.frames())
    print(f"sam2-hf: {error}; writing the {n} frame{'s' * (n != 1)} tracked before it.", file=sys.stderr)
    return error.masklets


def fail(message: str) -> int:
    print(f"sam2-hf: {message}", file=sys.stderr)
    return 2


# sam2_hf.backends.BACKENDS (not imported here: the CLI starts without torch)
BACKEND_CHOICES = ("auto", "torch", "compile", "onnxruntime", "openvino", "torch-export")
BACKEND_ENV = "SAM2_HF_BACKEND"  # the default --backend (unset: auto)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--device, --image-size and --backend, the model options of the commands that run a predictor."""
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu (default: the model's)")
    parser.add_argument("--image-size", type=int, default=None, help="model input size for a Meta .pt (default 1024)")
    parser.add_argument(
        "--backend", default=None, choices=BACKEND_CHOICES,
        help=f"what runs the model: auto (default, or ${BACKEND_ENV}: on a CPU each part on the exact engine, torch, "
        "onnxruntime or openvino, that ran it fastest here, measured once per model size and cached), torch (the "
        "model itself), compile (torch.compile), or its graphs exported once (cached) for onnxruntime, openvino or "
        "torch-export",
    )  # fmt: skip


def model_kwargs(args: argparse.Namespace) -> dict:
    """The `from_pretrained` keywords of the model options (`add_model_options`), device apart; the backend
    "auto" resolved here and named on stderr."""
    kwargs = {"image_size": args.image_size} if args.image_size else {}
    backend = args.backend or os.environ.get(BACKEND_ENV) or "auto"
    if args.backend is None and backend in ("torch", "compile") and exported_folder(args):
        backend = "auto"  # a default that runs the model itself cannot run its exported graphs
    show_precision(args)
    return kwargs | {"backend": auto_backend(args) if backend == "auto" else backend}


def show_precision(args: argparse.Namespace) -> None:
    """Say on stderr when --model is a lower-precision export: its masks are not exact (its agreement as measured
    when it was written, from its export.json)."""
    from ..backends.export import read_json

    folder = exported_folder(args)
    content = read_json(folder) if folder is not None else {}
    if content.get("precision", "fp32") == "fp32":
        return
    agreement = content.get("agreement") or {}
    measured = f"IoU mean {agreement['iou_mean']:.3f} with the exact masks when exported" if agreement else "unmeasured"
    print(f"sam2-hf: {folder} holds a lower-precision export ({content['precision']}): masks not exact ({measured}).",
          file=sys.stderr)  # fmt: skip


def exported_folder(args: argparse.Namespace) -> Path | None:
    """The command's --model when it is a folder written by `sam2-hf export`."""
    from ..backends.export import MANIFEST

    model = Path(str(getattr(args, "model", "") or ""))
    return model if (model / MANIFEST).is_file() else None


def auto_backend(args: argparse.Namespace) -> str:
    """The backend "auto" picks for this command's model and device, said on stderr with how to choose another;
    for a model (not an exported folder) on the CPU, which engine runs which part is said once it is known."""
    from ..backends import auto_measures, export_cache
    from ..backends.exported import fastest_engine

    model = exported_folder(args)
    if model is not None:
        name, how = fastest_engine(model), "the fastest installed engine that runs this export"
    elif auto_measures(args.device):
        name = "auto"
        how = (
            "each part of the model on the exact engine that runs it fastest here: torch, onnxruntime or "
            f"openvino, measured once for this model and size (a minute or more) and kept in {export_cache()}"
        )
        show_auto_choices()
    else:
        name, how = "torch", "no faster exact runtime for this device: pip install 'sam2-hf[openvino]' on a CPU"
    print(f"sam2-hf: backend {name} ({how}; --backend or ${BACKEND_ENV} chooses another)", file=sys.stderr)
    return name


def show_auto_choices() -> None:
    """Print backends/auto.py's messages (what it measures, which engine runs which part) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sam2-hf: %(message)s"))
    log = logging.getLogger("sam2_hf.backends.auto")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
