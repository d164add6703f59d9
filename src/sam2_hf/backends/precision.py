"""Lower-precision exports: opt-in, never exact. One table (`PRECISIONS`), one place to add a precision.

- "fp32": the exact export (backends/export.py), the default;
- "bf16" / "fp16": the float32 graphs, computed by OpenVINO in bfloat16 / float16 (its `INFERENCE_PRECISION_HINT`;
  fast where the CPU has AMX or AVX-512 BF16 / FP16, emulated and slower elsewhere);
- "int8": dynamic quantization (ONNX Runtime's `quantize_dynamic`): the MatMul / Gemm weights of the heavy graphs
  stored as int8, activations quantized per call; run by onnxruntime;
- "int8-static": static quantization with activation ranges calibrated on the inputs each graph saw while tracking
  the user's frames (`feeds`). Written as ONNX: ONNX Runtime's `quantize_static` (QDQ, per-channel weights), run by
  onnxruntime. Written for OpenVINO: OpenVINO's own post-training quantizer, NNCF (`nncf.quantize`, transformer
  preset) on the OpenVINO graphs, which also quantizes the attention's activation-by-activation products (ONNX
  Runtime's QDQ graphs, converted, left OpenVINO's attention in float32: 1.2x faster per frame, not 1.6x).

Only `QUANTIZED_GRAPHS` (the image encoder, memory attention and the memory encoder: almost all of a frame's FLOPs)
are quantized; the mask decoder, mask downsampler and object-pointer projection stay float32. How close a
lower-precision export comes to the exact masks is measured on a clip when it is written (tasks/lower_precision.py)
and recorded in its `export.json`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .export import import_optional

QUANTIZED_GRAPHS = ("image_encoder", "memory_attention", "memory_encoder")
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")  # static; dynamic quantizes MatMul / Gemm (its Conv kernels are slow)
# Calls each ONNX graph is calibrated on, spread over those recorded: ONNX Runtime's calibration holds every call's
# activations until it computes the ranges (about 2.3 GB per image-encoder call at 1024 px). NNCF reduces each
# call's statistics as it goes, so an OpenVINO graph is calibrated on every recorded call.
CALIBRATION_CALLS = 3


@dataclass(frozen=True)
class Precision:
    """One way to compute an export.

    name: the `--precision` value; exact: computes what the torch model computes (float32); formats: the export
    formats it can be written in; engines: the exported backends that run it as meant (the first measures its
    agreement); openvino_hint: OpenVINO's `INFERENCE_PRECISION_HINT`; quantization: None, "dynamic" or "static".
    """

    name: str
    exact: bool
    formats: tuple[str, ...]
    engines: tuple[str, ...]
    openvino_hint: str = "f32"
    quantization: str | None = None


PRECISIONS = {
    p.name: p
    for p in (
        Precision("fp32", True, ("onnx", "openvino", "torch"), ("onnxruntime", "openvino", "torch-export")),
        Precision("bf16", False, ("openvino", "onnx"), ("openvino",), openvino_hint="bf16"),
        Precision("fp16", False, ("openvino", "onnx"), ("openvino",), openvino_hint="f16"),
        Precision("int8", False, ("onnx",), ("onnxruntime",), quantization="dynamic"),
        Precision("int8-static", False, ("onnx", "openvino"), ("onnxruntime", "openvino"), quantization="static"),
    )
}


def get_precision(name: str, format: str | None = None) -> Precision:
    """The `PRECISIONS` entry `name`, checked against the export `format`. ValueError naming the choices."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; choose one of {list(PRECISIONS)}.")
    precision = PRECISIONS[name]
    if format is not None and format not in precision.formats:
        raise ValueError(f"Precision {name!r} is written as --format {' or '.join(precision.formats)}, not "
                         f"{format!r} (it runs on {' or '.join(precision.engines)}).")  # fmt: skip
    return precision


def check_engine(precision_name: str, engine: str, folder: Path) -> None:
    """ValueError when `engine` does not run an export of this precision as meant (e.g. onnxruntime, which has no
    bf16 kernels on the CPU, for a bf16 export)."""
    precision = get_precision(precision_name)
    if engine not in precision.engines:
        raise ValueError(f"{folder} is a {precision_name} export, which runs on {' or '.join(precision.engines)}, "
                         f"not on backend {engine!r}.")  # fmt: skip


class FeedReader:
    """ONNX Runtime's calibration reader over recorded feeds ({input name: array} per call)."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]):
        self.feeds: Iterator = iter(feeds)

    def get_next(self) -> Mapping[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_graphs(folder: Path, precision: Precision, feeds: Mapping[str, Sequence] | None = None) -> list[str]:
    """Quantize `folder`'s graphs of `QUANTIZED_GRAPHS` in place as `precision` says: its `.onnx` graphs with ONNX
    Runtime's quantizer, its OpenVINO `.xml` graphs (static only) with NNCF; returns the graphs quantized. Static
    quantization calibrates each graph on `feeds[graph]` ({input name: array} per call; ValueError when a graph has
    none)."""
    if precision.quantization is None:
        return []
    folder = Path(folder)
    if any((folder / f"{name}.xml").is_file() for name in QUANTIZED_GRAPHS):
        if precision.quantization != "static":
            raise ValueError(f"{precision.name} is written as ONNX; {folder} holds OpenVINO graphs.")
        return [name for name in QUANTIZED_GRAPHS if quantize_openvino_graph(folder, name, feeds)]
    quantization = import_optional("onnxruntime.quantization")
    import_optional("onnxruntime").set_default_logger_severity(3)  # its optimizer's notes are not ours
    with quantizer_advice_hidden():
        return [name for name in QUANTIZED_GRAPHS if quantize_graph(quantization, folder, name, precision, feeds)]


def calibration_feeds(feeds, name: str) -> Sequence[Mapping[str, np.ndarray]]:
    """The recorded inputs graph `name` is calibrated on; ValueError when none were recorded."""
    if not (feeds or {}).get(name):
        raise ValueError(f"Static quantization of {name} needs calibration inputs; none were recorded.")
    return feeds[name]


def quantize_openvino_graph(folder: Path, name: str, feeds) -> bool:
    """Quantize OpenVINO graph `folder/<name>.xml` in place with NNCF (int8 weights and activations, activation ranges
    the min and max over all of `feeds[name]`; NNCF's transformer preset); False when the folder has no such graph.
    NNCF's progress bars go to stderr after a line naming the graph, its notes below warnings are not shown."""
    path = folder / f"{name}.xml"
    if not path.is_file():
        return False
    openvino = import_optional("openvino")
    nncf = import_optional("nncf")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # activation ranges: the min and max over all calls. NNCF's default for activations (MEAN_MINMAX) averages each
    # call's min and max, so its ranges narrowed when the graphs went from all objects per call to one object
    # (92aa8e6): the test clip's IoU mean with the exact masks fell from 0.852 to 0.648; with MINMAX, 0.876
    all_calls_range = RangeEstimatorParametersSet.MINMAX
    calls = calibration_feeds(feeds, name)
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    print(f"NNCF: quantizing {name} on {len(calls)} calibration calls", file=sys.stderr, flush=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(
                openvino.Core().read_model(path), nncf.Dataset(calls), subset_size=len(calls),
                model_type=nncf.ModelType.TRANSFORMER,
                advanced_parameters=nncf.AdvancedQuantizationParameters(activations_range_estimator_params=all_calls_range),
            )  # fmt: skip
    finally:
        logger.setLevel(level)
    staged = path.with_suffix(".int8.xml")
    openvino.save_model(quantized, staged, compress_to_fp16=False)
    staged.replace(path)
    staged.with_suffix(".bin").replace(path.with_suffix(".bin"))
    return True


def quantize_graph(quantization, folder: Path, name: str, precision: Precision, feeds) -> bool:
    """Quantize ONNX graph `name` of `folder` in place with ONNX Runtime (see `quantize_graphs`); False when the
    folder has no such graph (an image model has no memory graphs)."""
    path = folder / f"{name}.onnx"
    if not path.is_file():
        return False
    staged = path.with_suffix(".int8.onnx")
    if precision.quantization == "dynamic":
        quantization.quantize_dynamic(
            path, staged, weight_type=quantization.QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )
    else:
        quantization.quantize_static(
            path, staged, FeedReader(spread(calibration_feeds(feeds, name), CALIBRATION_CALLS)),
            quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
        )  # fmt: skip
    staged.replace(path)
    return True


@contextlib.contextmanager
def quantizer_advice_hidden():
    """Drop the warnings ONNX Runtime's quantizer logs on the root logger while it runs (advice for quantizing any
    model, e.g. "Please consider to run pre-processing before quantization"): an export here reports its measured
    agreement with the exact masks instead. Other loggers and levels above WARNING pass."""
    quantizer = os.sep + os.path.join("onnxruntime", "quantization") + os.sep

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING or quantizer not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def spread(items: Sequence, count: int) -> list:
    """At most `count` of `items`, evenly spread from the first to the last."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / max(count - 1, 1))] for i in range(count)]
