"""A SAM 2 model's image parts in the layout transformers.js reads (the Hugging Face Hub's `onnx-community/sam2*-ONNX`
repositories): `Sam2Model.from_pretrained(folder)` / `AutoProcessor.from_pretrained(folder)` of
`@huggingface/transformers` (v3.8+, v4) load it and segment with it in Node.js or the browser.

    sam2-hf export facebook/sam2.1-hiera-tiny --format transformers.js --out sam2.1-tiny-js/

The folder:

- `onnx/vision_encoder.onnx`: pixel_values (B, 3, S, S) float32 -> image_embeddings.0 (B, 32, 4h, 4w),
  image_embeddings.1 (B, 64, 2h, 2w), image_embeddings.2 (B, 256, h, w) float32, h = S / 16: the stride-4 and
  stride-8 skip features (projected as the mask decoder uses them) and the stride-16 features with the learned
  no-memory embedding added (`Sam2Model.get_image_embeddings`);
- `onnx/prompt_encoder_mask_decoder.onnx`: image_embeddings.0 / .1 / .2, input_points (B, P, N, 2) float32 in
  pixels of the S x S model input, input_labels (B, P, N) int64 (1 positive, 0 negative, -10 padding), input_boxes
  (B, NB, 4) float32 (x0, y0, x1, y1, model-input pixels) -> iou_scores (B, Q, 3), pred_masks (B, Q, 3, 4h, 4w)
  low-resolution logits, object_score_logits (B, Q, 1), all float32: the three multimask outputs of Q prompt sets.
  Each prompt set is the box (if any) as its two corners, then the clicks, then SAM 2's "not a point" token, as
  Meta's `SAM2ImagePredictor` builds it. transformers.js passes NB = 0 boxes with points, or P = 1 set of N = 0
  points with boxes: Q = P prompt sets sharing one box (NB <= 1), or Q = NB boxes without clicks;
- `config.json`: the `sam2` configuration (`model_type`, `vision_config.num_feature_levels` are what transformers.js
  reads) with `"transformers.js_config": {"dtype": "fp32"}`, so every device loads these float32 files;
- `preprocessor_config.json`: `Sam2ImageProcessor` / `Sam2Processor`: resize to S x S (bilinear), rescale by
  1 / 255, ImageNet mean / std; transformers.js' `post_process_masks` brings masks back to the image size.

Both graphs are traced from the model's own modules (export.py's `MaskDecoderGraph`, `tracing`, `trace_graph`,
`save_onnx`), float32, with dynamic batch, prompt-set, point and box axes. The decoder always returns the three
multimask outputs (as the Hub's exports do): single-mask output and mask prompts are not part of this layout.
Agreement with `Sam2ImagePredictor` is tested in tests/test_transformers_js.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..models.components.mask_decoder import DecoderOutput, choose_outputs
from ..models.components.prompt_encoder import sparse_prompt_points
from ..models.modeling import Sam2Model, Sam2VideoModel
from ..processing.image_processing import Sam2ImageProcessor
from ..processing.prompts import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, PADDING
from .export import GraphSpec, MaskDecoderGraph, import_optional, sample_inputs, save_onnx, trace_graph, tracing

VISION_ENCODER = "vision_encoder"
PROMPT_ENCODER_MASK_DECODER = "prompt_encoder_mask_decoder"
EMBEDDINGS = ("image_embeddings.0", "image_embeddings.1", "image_embeddings.2")
CONFIG, PREPROCESSOR_CONFIG = "config.json", "preprocessor_config.json"


class VisionEncoderGraph(nn.Module):
    """pixel_values (B, 3, S, S) -> the three `image_embeddings.i` of `Sam2Model.get_image_embeddings`."""

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return tuple(self.model.get_image_embeddings(pixel_values))


class PromptEncoderMaskDecoderGraph(nn.Module):
    """transformers.js' prompt inputs -> the multimask outputs of Q = max(P, NB) prompt sets per image (see the module
    docstring), through `MaskDecoderGraph.decode`."""

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.decoder = MaskDecoderGraph(model)

    def forward(self, image_embeddings_0, image_embeddings_1, image_embeddings_2, input_points, input_labels,
                input_boxes):  # fmt: skip
        b, p, _ = input_labels.shape
        nb = input_boxes.shape[1]
        q = torch.sym_max(p, nb)
        rows = torch.arange(q, device=input_points.device)
        point_rows = rows.clamp(max=p - 1)  # P = Q, or one (empty) point set shared by Q boxes
        points, labels = input_points[:, point_rows], input_labels[:, point_rows]  # (B, Q, N, 2), (B, Q, N)
        # Box of each prompt set: box i, the one box shared by every set, or (NB = 0) an appended zero row (index -1)
        # whose two corners are padding (label -10, left out of the decoder's attention).
        boxes = torch.cat([input_boxes, input_boxes.new_zeros(b, 1, 4)], dim=1)[:, rows.clamp(max=nb - 1)]
        has_box = input_boxes.new_ones(b, nb).sum(dim=1, keepdim=True) > 0  # (B, 1)
        corners = torch.where(has_box, input_labels.new_tensor([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]), PADDING)
        coords = torch.cat([boxes.reshape(b, q, 2, 2), points], dim=2)  # the box first, as Meta orders it
        kinds = torch.cat([corners[:, None].expand(b, q, 2), labels], dim=2)
        coords, kinds = sparse_prompt_points(coords, kinds, None)  # + "not a point"
        per_set = lambda x: x[:, None].expand(b, q, *x.shape[1:]).flatten(0, 1)  # (B, ...) -> (B * Q, ...)
        embeddings = per_set(image_embeddings_2)
        dense = self.decoder.no_mask_embedding().expand(embeddings.shape[0], -1, *embeddings.shape[-2:])
        decoded = self.decoder.decode(
            embeddings, per_set(image_embeddings_0), per_set(image_embeddings_1), coords.flatten(0, 1),
            kinds.flatten(0, 1), dense,
        )  # fmt: skip
        out = choose_outputs(DecoderOutput(*decoded), multimask_output=True, stability=None)
        return tuple(x.unflatten(0, (b, q)) for x in (out.iou_scores, out.masks, out.object_score_logits))


BATCH = {0: "batch_size"}
GRAPHS = {
    VISION_ENCODER: GraphSpec(VisionEncoderGraph, ("pixel_values",), EMBEDDINGS, {"pixel_values": BATCH}),
    PROMPT_ENCODER_MASK_DECODER: GraphSpec(
        PromptEncoderMaskDecoderGraph,
        (*EMBEDDINGS, "input_points", "input_labels", "input_boxes"),
        ("iou_scores", "pred_masks", "object_score_logits"),
        {
            **{name: BATCH for name in EMBEDDINGS},
            "input_points": {**BATCH, 1: "point_batch_size", 2: "num_points"},
            "input_labels": {**BATCH, 1: "point_batch_size", 2: "num_points"},
            "input_boxes": {**BATCH, 1: "num_boxes"},
        },
        may_be_empty=("num_points", "num_boxes"),
    ),
}


def graph_inputs(name: str, model: Sam2Model) -> tuple[torch.Tensor, ...]:
    """Example inputs of graph `name` at the model's size, every dynamic axis at a distinct size >= 2 (torch.export
    specializes axes traced at 0 or 1, and may tie axes traced at one size)."""
    s = model.config.image_size
    if name == VISION_ENCODER:
        return (torch.randn(2, 3, s, s),)
    image_embeddings, high_res_0, high_res_1, *_ = sample_inputs("mask_decoder", model)  # batch 2
    labels = torch.tensor([[[1, 0], [1, 1], [0, PADDING]], [[1, 1], [0, 1], [1, 0]]])  # (B=2, P=3, N=2)
    return high_res_0, high_res_1, image_embeddings, torch.rand(2, 3, 2, 2) * s, labels, torch.rand(2, 4, 4) * s


def config_json(model: Sam2Model | Sam2VideoModel) -> dict:
    """config.json: the model's image configuration (`model_type` "sam2"), its architecture and the float32 files
    as transformers.js' default for every device."""
    config = Sam2Model.own_config(model.config).to_dict()
    return {**config, "architectures": ["Sam2Model"], "transformers.js_config": {"dtype": "fp32"}}


def preprocessor_json(image_size: int) -> dict:
    """preprocessor_config.json: this package's `Sam2ImageProcessor` settings for input size `image_size` (resize to
    image_size x image_size, rescale, ImageNet normalization), named as transformers.js' classes."""
    config = json.loads(Sam2ImageProcessor.for_image_size(image_size).to_json_string())
    return {**config, "image_processor_type": "Sam2ImageProcessor", "processor_class": "Sam2Processor"}


def write_transformers_js(model: Sam2Model | Sam2VideoModel, out: str | Path) -> Path:
    """Write `model`'s image parts to folder `out` in transformers.js' layout: `onnx/vision_encoder.onnx`,
    `onnx/prompt_encoder_mask_decoder.onnx` (inputs, outputs, shapes and dtypes in the module docstring),
    `config.json` and `preprocessor_config.json`; returns the folder (created if missing; files in it are replaced).

    `model` is a float32 `Sam2Model` or `Sam2VideoModel` (its memory parts are not written) at any input size
    (a multiple of 16; the processor resizes images to it). Raises ValueError for another dtype, ImportError when
    onnx / onnxscript are missing (`pip install 'sam2-hf[onnx]'`), and what torch.export raises for a model it
    cannot trace.
    """
    if model.dtype != torch.float32:
        raise ValueError(f"Export a float32 model (this one is {model.dtype}); lower precision is a separate option.")
    for module in ("onnx", "onnxscript"):
        import_optional(module)
    out = Path(out)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with tracing():
        for name, spec in GRAPHS.items():
            inputs = graph_inputs(name, model)
            save_onnx(trace_graph(spec, spec.module(model), inputs), spec, inputs, out / "onnx" / f"{name}.onnx")
    (out / CONFIG).write_text(json.dumps(config_json(model), indent=2))
    (out / PREPROCESSOR_CONFIG).write_text(json.dumps(preprocessor_json(model.config.image_size), indent=2))
    return out
