"""Export the compute seam's four parts (backends/protocol.py) as graphs: ONNX (run by ONNX Runtime or OpenVINO)
or torch.export ExportedPrograms (`.pt2`, for ExecuTorch / AOTInductor users and the "torch-export" backend).

Each graph is a small module over the model's own methods, so an exported part computes what the torch part does:

- image_encoder: pixel_values (1, 3, S, S) -> image_embeddings (1, C, h, w), high_res_features_0 (1, 32, 4h, 4w),
  high_res_features_1 (1, 64, 2h, 2w), position_embeddings (1, C, h, w);
- mask_decoder: image_embeddings (N, C, h, w), high_res_features_0 / _1 (N, ...), point_coords (N, T, 2) input
  pixels, point_labels (N, T) int64, mask_input (N, 1, 4h, 4w), has_mask_input () bool -> masks (N, 4, 4h, 4w),
  iou_scores (N, 4), mask_tokens (N, 4, C), object_score_logits (N, 1);
- mask_downsample: masks (N, 1, S, S) -> mask_input (N, 1, 4h, 4w); object_pointer: mask_token (N, C) ->
  object_pointer (N, C);
- memory_attention: image_embeddings (1, C, h, w) (one frame, shared by the objects), position_embeddings
  (1, C, h, w), memories (N, F, 64, h, w), temporal_index (N, F) int64, object_pointers (N, P, C),
  pointer_offsets (N, P), max_pointers () ->
  conditioned_embeddings (N, C, h, w);
- memory_encoder: image_embeddings (N, C, h, w), high_res_masks (N, 1, S, S), object_score_logits (N, 1),
  binarize () bool -> memory (N, 64, h, w).

N, T, F and P are dynamic axes. The prompt is one point list
(`sparse_prompt_points`: clicks, box corners, the "not a point" token; label -10 pads a batch), the mask decoder
returns all four masks (the multimask / stability choice is `choose_outputs`, shared with the torch part), and
memory attention takes the selected memories as tensors (`stack_selections`). The two learned vectors used outside a
graph (no-memory embedding, no-object pointer) go to `constants.safetensors`.
`export.json` records the format version, the versions of the tools, the model's config and a hash of its weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..models.checkpoint import EXPORT_MANIFEST as MANIFEST  # the loaders recognise an export by it
from ..models.components import position_encoding
from ..models.modeling import Sam2VideoModel
from ..models.outputs import Sam2FrameFeatures
from ..processing.prompts import PADDING

FORMAT_VERSION = 1  # raised when a graph's inputs or outputs change; older folders are refused with a message
FORMATS = {"onnx": ".onnx", "openvino": ".xml", "torch": ".pt2"}
OPSET = 18
CONSTANTS = "constants.safetensors"


class ImageEncoderGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        features = self.model.encode_frame(pixel_values)
        return features.image_embeddings, *features.high_res_features, features.position_embeddings


class MaskDecoderGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, high_res_0, high_res_1, point_coords, point_labels, mask_input, has_mask):
        encoder = self.model.prompt_encoder
        dense = torch.where(has_mask, encoder.mask_embed(mask_input), self.no_mask_embedding())
        return self.decode(image_embeddings, high_res_0, high_res_1, point_coords, point_labels, dense)

    def no_mask_embedding(self) -> torch.Tensor:
        """The dense embedding of a prompt without a mask: (1, C, 1, 1)."""
        return self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def decode(self, image_embeddings, high_res_0, high_res_1, point_coords, point_labels, dense):
        """Prompt points (N, T, 2) / (N, T) and a dense embedding (N, C, h, w) -> the decoder's four outputs."""
        out = self.model.mask_decoder.all_outputs(
            image_embeddings,
            self.model.dense_positional_embedding(),
            self.model.prompt_encoder.embed_points(point_coords, point_labels),
            dense,
            [high_res_0, high_res_1],
            sparse_padding=point_labels == PADDING,
        )
        return out.masks, out.iou_scores, out.mask_tokens, out.object_score_logits


class MaskDownsampleGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, masks):
        return self.model.mask_downsample(masks)


class ObjectPointerGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, mask_token):
        return self.model.object_pointer_proj(mask_token)


class MemoryAttentionGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, position_embeddings, memories, temporal_index, pointers, offsets, max_pointers):
        image_embeddings = image_embeddings.expand(memories.shape[0], -1, -1, -1)  # one batch axis: the objects
        return self.model.attend_memory_bank(
            image_embeddings, position_embeddings, memories, temporal_index, pointers, offsets, max_pointers
        )


class MemoryEncoderGraph(nn.Module):
    def __init__(self, model: Sam2VideoModel):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, high_res_masks, object_score_logits, binarize):
        features = Sam2FrameFeatures(image_embeddings=image_embeddings)
        return self.model.encode_memory(features, high_res_masks, object_score_logits, binarize)


@dataclass(frozen=True)
class GraphSpec:
    """One graph: its module, input and output names, which input axes are dynamic ({input: {axis: name}}) and
    which of those may be empty (size 0; the others are at least 1)."""

    module: type[nn.Module]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    video_only: bool = False
    may_be_empty: tuple[str, ...] = ()


GRAPHS = {
    "image_encoder": GraphSpec(
        ImageEncoderGraph,
        ("pixel_values",),
        ("image_embeddings", "high_res_features_0", "high_res_features_1", "position_embeddings"),
        {},
    ),
    "mask_decoder": GraphSpec(
        MaskDecoderGraph,
        (
            "image_embeddings",
            "high_res_features_0",
            "high_res_features_1",
            "point_coords",
            "point_labels",
            "mask_input",
            "has_mask_input",
        ),
        ("masks", "iou_scores", "mask_tokens", "object_score_logits"),
        {
            "image_embeddings": {0: "N"},
            "high_res_features_0": {0: "N"},
            "high_res_features_1": {0: "N"},
            "point_coords": {0: "N", 1: "T"},
            "point_labels": {0: "N", 1: "T"},
            "mask_input": {0: "N"},
        },
        may_be_empty=("T",),
    ),
    "mask_downsample": GraphSpec(MaskDownsampleGraph, ("masks",), ("mask_input",), {"masks": {0: "N"}}, True),
    "object_pointer": GraphSpec(
        ObjectPointerGraph, ("mask_token",), ("object_pointer",), {"mask_token": {0: "N"}}, True
    ),
    "memory_attention": GraphSpec(
        MemoryAttentionGraph,
        (
            "image_embeddings",
            "position_embeddings",
            "memories",
            "temporal_index",
            "object_pointers",
            "pointer_offsets",
            "max_pointers",
        ),
        ("conditioned_embeddings",),
        {
            "memories": {0: "N", 1: "F"},
            "temporal_index": {0: "N", 1: "F"},
            "object_pointers": {0: "N", 1: "P"},
            "pointer_offsets": {0: "N", 1: "P"},
        },
        True,
    ),
    "memory_encoder": GraphSpec(
        MemoryEncoderGraph,
        ("image_embeddings", "high_res_masks", "object_score_logits", "binarize"),
        ("memory",),
        {"image_embeddings": {0: "N"}, "high_res_masks": {0: "N"}, "object_score_logits": {0: "N"}},
        True,
    ),
}


def sample_inputs(name: str, model: Sam2VideoModel) -> tuple[torch.Tensor, ...]:
    """Example inputs of graph `name` at the model's size, with every dynamic axis at 2 or 3 (torch.export
    specializes axes traced at 0 or 1)."""
    config = model.config
    s, c = config.image_size, config.vision_config.fpn_hidden_size
    h = s // 16
    m = config.memory_encoder_output_channels if model.has_memory else 64
    features = lambda n: (
        torch.randn(n, c, h, h),
        torch.randn(n, c // 8, 4 * h, 4 * h),
        torch.randn(n, c // 4, 2 * h, 2 * h),
    )
    if name == "image_encoder":
        return (torch.randn(1, 3, s, s),)
    if name == "mask_decoder":
        labels = torch.tensor([[1, 0, PADDING], [2, 3, -1]])
        return (*features(2), torch.rand(2, 3, 2) * s, labels, torch.randn(2, 1, 4 * h, 4 * h), torch.tensor(True))
    if name == "mask_downsample":
        return (torch.randn(2, 1, s, s),)
    if name == "object_pointer":
        return (torch.randn(2, c),)
    if name == "memory_attention":
        index = torch.tensor([[0, 5, 6], [0, 4, 6]])
        return (
            torch.randn(1, c, h, h),
            torch.randn(1, c, h, h),
            torch.randn(2, 3, m, h, h),
            index,
            torch.randn(2, 2, c),
            torch.tensor([[1.0, 2.0], [1.0, 3.0]]),
            torch.tensor(16.0),
        )
    if name == "memory_encoder":
        return (torch.randn(2, c, h, h), torch.randn(2, 1, s, s), torch.randn(2, 1), torch.tensor(True))
    raise KeyError(name)


def weights_hash(model: nn.Module) -> str:
    """sha256 over the model's parameters and buffers (names, shapes, dtypes, values): the key of the export
    cache and the check that an exported folder belongs to the weights it is used with."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_model(model: Sam2VideoModel, out: str | Path, format: str = "onnx") -> Path:
    """Write the model's graphs to folder `out` in `format` ("onnx", "openvino" or "torch") with `export.json`
    and `constants.safetensors`; returns the folder. An image `Sam2Model` gets the image graphs only.

    Raises ValueError for an unknown format or a model not in float32 (the exact export), ImportError naming the
    extra to install (`sam2-hf[onnx]`, `sam2-hf[openvino]`) when a tool is missing.
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {sorted(FORMATS)}.")
    if model.dtype != torch.float32:
        raise ValueError(f"Export a float32 model (this one is {model.dtype}); lower precision is a separate option.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    names = [n for n, spec in GRAPHS.items() if model.has_memory or not spec.video_only]
    graph_format = "torch" if format == "torch" else "onnx"
    with tracing():
        for name in names:
            write_graph(model, name, out, graph_format)
    constants = {"no_memory_embedding": model.no_memory_embedding.detach().reshape(1, -1).contiguous()}
    if model.has_memory:
        constants["no_object_pointer"] = model.no_object_pointer.detach().contiguous()
    save_file(constants, out / CONSTANTS)
    write_manifest(out, manifest(model, graph_format, names))
    if format == "openvino":
        convert_to_openvino(out)
    return out


STAGING_PREFIX = ".export-"  # + host + pid: folders being written, moved into place only when finished


def staging_folder(parent: Path) -> Path:
    """A new, empty folder in `parent` to write an export in before it is moved into place; first removes the
    staging folders in `parent` left by processes of this host that are no longer running (an export killed while
    writing would otherwise leave hundreds of MB behind)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for folder in parent.glob(f"{STAGING_PREFIX}{host}-*-*"):
        pid = folder.name[len(f"{STAGING_PREFIX}{host}-") :].split("-")[0]
        if pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{host}-{os.getpid()}-"))


def process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_json(folder: Path) -> dict:
    """`folder`'s `export.json` as written (unchecked; backends/exported.py's `read_manifest` checks it). ValueError
    naming the file when it is not JSON (cut short, or edited)."""
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): the export was cut short or the file edited; export the "
                         "model again.") from e  # fmt: skip


def write_manifest(folder: Path, content: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(content, indent=2))


def convert_to_openvino(folder: Path) -> None:
    """Turn an ONNX export folder into an OpenVINO one in place: each `.onnx` graph (float32, or quantized QDQ)
    becomes an `.xml` / `.bin` IR with its weights as stored (no fp16 compression), and `export.json` says so."""
    openvino = import_optional("openvino")
    content = read_json(folder)
    for name, file in content["graphs"].items():
        onnx_path = Path(folder) / file
        openvino.save_model(openvino.convert_model(onnx_path), Path(folder) / f"{name}.xml", compress_to_fp16=False)
        onnx_path.unlink()
    content["format"] = "openvino"
    content["graphs"] = {name: f"{name}.xml" for name in content["graphs"]}
    write_manifest(folder, content)


TRACING = threading.RLock()  # torch.export keeps global state while it traces: one export at a time per process


@contextlib.contextmanager
def tracing():
    """The context graphs are traced in: one thread at a time (`TRACING`: the Space may export a model size in the
    background while a visitor's request exports another); gradients on, also inside inference mode, so that no
    inference-only branch is traced (those run objects one by one or rotate in place); position tables first built
    while tracing (they hold traced values) are cleared on leaving."""
    with TRACING:
        try:
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            position_encoding.clear_cached_tables()


def write_graph(model: Sam2VideoModel, name: str, out: Path, format: str) -> None:
    """One graph of `GRAPHS` as `out/<name>.onnx` ("onnx") or `.pt2` ("torch"), traced with torch.export (call it
    inside `tracing()`, as `export_model` does)."""
    spec, inputs = GRAPHS[name], sample_inputs(name, model)
    program = trace_graph(spec, spec.module(model), inputs)
    if format == "torch":
        torch.export.save(program, out / f"{name}.pt2")
    else:
        save_onnx(program, spec, inputs, out / f"{name}.onnx")


def trace_graph(spec: GraphSpec, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    """`module` (of class `spec.module`) traced with torch.export on `inputs`, with `spec`'s dynamic axes (at least
    1, or at least 0 for `spec.may_be_empty`). Raises what torch.export raises for a module it cannot trace."""
    dims = {
        axis_name: torch.export.Dim(axis_name, min=0 if axis_name in spec.may_be_empty else 1)
        for axes in spec.dynamic.values()
        for axis_name in axes.values()
    }
    shapes = {  # keyed by the module's argument names, in the order of the graph's input names
        arg: {axis: dims[axis_name] for axis, axis_name in spec.dynamic.get(input_name, {}).items()} or None
        for arg, input_name in zip(spec_args(spec), spec.inputs, strict=True)
    }
    return torch.export.export(module, inputs, dynamic_shapes=shapes)


def save_onnx(program: torch.export.ExportedProgram, spec: GraphSpec, inputs: tuple, path: Path) -> None:
    """A traced graph as one self-contained `.onnx` file at `path` (opset `OPSET`, float32 weights inside, `spec`'s
    input and output names). Raises what torch.onnx.export raises (ImportError without onnx / onnxscript)."""
    torch.onnx.export(
        program,
        inputs,
        path,
        input_names=list(spec.inputs),
        output_names=list(spec.outputs),
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def spec_args(spec: GraphSpec) -> list[str]:
    """The graph module's forward argument names, in order (torch.export keys dynamic shapes by them)."""
    code = spec.module.forward.__code__
    return list(code.co_varnames[1 : code.co_argcount])


def manifest(model: Sam2VideoModel, format: str, names: list[str]) -> dict:
    """What `export.json` records: enough to refuse a folder that does not match the model or this code."""
    import transformers

    from .. import __version__

    decoder = model.mask_decoder
    return {
        "format_version": FORMAT_VERSION,
        "format": format,
        "precision": "fp32",  # backends/precision.py; a lower-precision export also records its agreement
        "graphs": {name: f"{name}{FORMATS[format]}" for name in names},
        "opset": OPSET if format != "torch" else None,
        "versions": {"sam2_hf": __version__, "torch": torch.__version__, "transformers": transformers.__version__},
        "model_class": type(model).__name__,
        "weights_sha256": weights_hash(model),
        "stability_rule": list(decoder.stability_rule()) if decoder.stability_rule() else None,
        "config": model.config.to_dict(),
    }


# optional module (top-level name) -> the extra of sam2-hf that installs it (pyproject.toml's optional dependencies)
EXTRAS = {"onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx", "openvino": "openvino", "nncf": "openvino"}


def import_optional(module: str):
    """Import an optional runtime (`module` or a submodule of one in `EXTRAS`), or ImportError naming the pip extra
    that brings it. KeyError for a module missing from `EXTRAS`."""
    extra = EXTRAS[module.partition(".")[0]]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed: pip install 'sam2-hf[{extra}]'") from error
