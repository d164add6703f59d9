"""Image section: encoder time per image, click-to-mask latency on a cached embedding, batched encoding.

Implementations, same weights and the same images:
- `sam2_hf`       `Sam2ImagePredictor.set_image` / `set_image_batch` / `predict`;
- `meta`          Meta's `SAM2ImagePredictor`, the same calls (sam2_hf's predictor is a drop-in for it);
- `transformers`  `Sam2Model.get_image_embeddings` on the pixels the two predictors compute themselves (Meta's
                  transforms, prepared untimed), then `Sam2Processor` prompts -> `Sam2Model(image_embeddings=...)`
                  -> `post_process_masks` for a click;
- `ultralytics`   (when installed) Ultralytics' `SAM2Predictor`: `set_image`, then its public call
                  `predictor(points=..., labels=..., multimask_output=True)` (masks at the image size). It has no
                  batched encoder (not in the batch part), and it letterboxes (aspect kept, padded) where Meta
                  stretches the image to a square, so on a non-square image its embeddings and masks differ from
                  Meta's by design (tests/test_ultralytics.py: equal on a square image of the input size).
- `samexporter`   (when installed, at image size 1024: its export hard-codes it) PyPI's samexporter: Meta's image
                  encoder and prompt encoder + mask decoder exported to ONNX by its `export_sam2` from the same `.pt`
                  (once per workdir, untimed), run on onnxruntime through its `SegmentAnything2ONNX`: `encode(bgr)`
                  (its own cv2 resize and normalization inside), `predict_masks(embedding, [point])` (3 masks decoded,
                  the best one resized to the image by cv2). No memory parts: not in the video section. It prints
                  a line per call; that goes to /dev/null. Install it beside torch 2.14 with `pip install --no-deps
                  samexporter` (its wheel pins an older torch).
Clicks: one positive point, `multimask_output=True` (3 masks; the default of the first three APIs).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import torch

from .agreement import logit_agreement
from .common import (
    Weights,
    auto_engines,
    backend_row,
    backend_source,
    load_meta_model,
    object_clicks,
    synthetic_frames,
    ultralytics_checkpoint,
    with_model_flops,
)
from .flops import count_flops
from .timing import interleaved, timing_table

LOW_RES_LOGIT_LIMIT = 32.0  # the predictors return low-resolution logits clamped to +-32


class PredictorImage:
    """sam2_hf's or Meta's image predictor (same API)."""

    def __init__(self, name: str, predictor):
        self.name, self.predictor = name, predictor

    def prepare(self, images: list[np.ndarray]):
        return images

    def encode(self, images) -> None:
        if len(images) == 1:
            self.predictor.set_image(images[0])
        else:
            self.predictor.set_image_batch(images)

    def embeddings(self) -> torch.Tensor:
        return self.predictor.get_image_embedding()

    def click(self, xy) -> tuple:
        """-> (low-res logits (3, S/4, S/4), masks (3, H, W))."""
        masks, _, low_res = self.predictor.predict(point_coords=np.array([xy]), point_labels=np.array([1]))
        return low_res, masks


class TransformersImage:
    """transformers' `Sam2Model` with its `Sam2Processor` for prompts and masks."""

    name = "transformers"

    def __init__(self, weights: Weights):
        from transformers import Sam2ImageProcessor, Sam2Model, Sam2Processor

        self.model = Sam2Model.from_pretrained(weights.folder).eval()
        self.processor = Sam2Processor(Sam2ImageProcessor(), target_size=weights.image_size)
        self.image_size = weights.image_size
        self.image_embeddings = self.original_size = None

    def prepare(self, images: list[np.ndarray]) -> torch.Tensor:
        from sam2_hf.processing.image_processing import preprocess_images

        self.original_size = list(images[0].shape[:2])
        return preprocess_images(images, self.image_size)[0]

    def encode(self, pixel_values: torch.Tensor) -> None:
        self.image_embeddings = self.model.get_image_embeddings(pixel_values)

    def embeddings(self) -> torch.Tensor:
        return self.image_embeddings[-1]

    def click(self, xy) -> tuple:
        sizes = [self.original_size]
        prompt = self.processor(input_points=[[[xy]]], input_labels=[[[1]]], original_sizes=sizes, return_tensors="pt")
        out = self.model(
            image_embeddings=self.image_embeddings,
            input_points=prompt["input_points"],
            input_labels=prompt["input_labels"],
            multimask_output=True,
        )
        masks = self.processor.post_process_masks(out.pred_masks, sizes)[0][0]
        return out.pred_masks[0, 0].clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT), masks


class UltralyticsImage:
    """Ultralytics' `SAM2Predictor` on the same weights (named as its release file: `ultralytics_checkpoint`)."""

    name = "ultralytics"
    batched = False  # set_image takes one image

    def __init__(self, weights: Weights):
        from ultralytics.models.sam import SAM2Predictor

        overrides = dict(model=str(ultralytics_checkpoint(weights)), imgsz=weights.image_size, conf=0.0,
                         device="cpu", save=False, verbose=False)  # fmt: skip
        self.predictor = SAM2Predictor(overrides=overrides)
        self.image = None

    def prepare(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(image[..., ::-1]) for image in images]  # it reads OpenCV's BGR arrays

    def encode(self, images) -> None:
        self.image = images[0]
        self.predictor.set_image(self.image)

    def embeddings(self) -> torch.Tensor:
        return self.predictor.features["image_embed"]

    def click(self, xy) -> tuple:
        """-> (None: its public call returns no logits, see `agreement_logits`; masks (3, H, W))."""
        result = self.predictor(points=[xy], labels=[1], multimask_output=True)[0]
        return None, result.masks.data

    def agreement_logits(self, xy) -> torch.Tensor:
        """Untimed: the click's low-resolution logits (3, S/4, S/4) from its `prompt_inference` on the cached
        features, clamped as Meta's predictor clamps them."""
        pixels = self.predictor.preprocess([self.image])
        logits, _ = self.predictor.prompt_inference(pixels, points=[xy], labels=[1], multimask_output=True)
        return logits.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT)


class SamexporterImage:
    """samexporter's ONNX export of the same `.pt` (image parts only) on onnxruntime, through its own API."""

    name = "samexporter"
    batched = False  # encode takes one image

    def __init__(self, weights: Weights):
        from samexporter.sam2_onnx import SegmentAnything2ONNX

        encoder, decoder = self.export(weights)
        self.model = SegmentAnything2ONNX(str(encoder), str(decoder))
        self.embedding = None

    @staticmethod
    def export(weights: Weights):
        """Its exporter (`python -m samexporter.export_sam2`) on the bench's Meta `.pt`, once per workdir."""
        folder = weights.pt.parent / f"samexporter_{weights.pt.stem}"
        encoder, decoder = folder / "encoder.onnx", folder / "decoder.onnx"
        if not (encoder.exists() and decoder.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            release = "sam2.1" if weights.version == "2.1" else "sam2"
            model_type = f"{release}_hiera_{weights.size.replace('-', '_')}"
            subprocess.run([sys.executable, "-m", "samexporter.export_sam2", "--checkpoint", str(weights.pt),
                            "--model_type", model_type, "--output_encoder", str(encoder), "--output_decoder",
                            str(decoder)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return encoder, decoder

    def prepare(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(image[..., ::-1]) for image in images]  # it reads OpenCV's BGR arrays

    def encode(self, images) -> None:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            self.embedding = self.model.encode(images[0])

    def embeddings(self) -> torch.Tensor:
        return torch.from_numpy(self.embedding["image_embedding"])

    def click(self, xy) -> tuple:
        """-> (None: its call returns the best mask only, see `agreement_outputs`; that mask's logits (1, H, W))."""
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            masks = self.model.predict_masks(self.embedding, [{"type": "point", "data": list(xy), "label": 1}])
        return None, masks[0]

    def agreement_outputs(self, xy) -> tuple:
        """Untimed: its decoder graph's 3 low-resolution logits (3, S/4, S/4) for the click and the 3 masks at the
        image size, resized by cv2 as its `predict_masks` resizes the best one."""
        import cv2

        decoder, e = self.model.decoder, self.embedding
        decoder.set_image_size(e["original_size"])
        inputs = decoder.prepare_inputs(e["image_embedding"], e["high_res_feats_0"], e["high_res_feats_1"],
                                        np.array([xy], dtype=np.float32), np.array([1], dtype=np.float32))  # fmt: skip
        low_res = decoder.session.run(decoder.output_names, dict(zip(decoder.input_names, inputs)))[0][0]
        height, width = e["original_size"]
        masks = np.stack([cv2.resize(m, (width, height)) for m in low_res])
        return torch.from_numpy(low_res).clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT), masks


def load_image_implementations(weights: Weights, backends=()) -> list:
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam2_hf import Sam2ImagePredictor

    meta = SAM2ImagePredictor(load_meta_model(weights))
    s = weights.image_size
    meta._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]  # hard-coded for 1024 in Meta's
    impls = [
        PredictorImage("sam2_hf", Sam2ImagePredictor.from_pretrained(weights.folder)),
        PredictorImage("meta", meta),
        TransformersImage(weights),
    ]
    if importlib.util.find_spec("ultralytics") is not None:
        impls.append(UltralyticsImage(weights))
    if importlib.util.find_spec("samexporter") is not None and weights.image_size == 1024:
        impls.append(SamexporterImage(weights))
    for backend in backends:
        source, name = backend_source(weights, backend)
        predictor = Sam2ImagePredictor.from_pretrained(source, backend=name)
        impls.append(PredictorImage(backend_row(backend), predictor))
    return impls


def embedding_agreement(impls) -> dict:
    reference = next(i for i in impls if i.name == "meta").embeddings()
    return {i.name: {"max_abs_embedding_diff": float((i.embeddings() - reference).abs().max())} for i in impls}


def encoder_part(impls, images, repeats: int) -> dict:
    """set_image on one image: a FLOP-counted untimed first call, an untimed round, then `repeats` interleaved
    timed calls."""
    inputs = {i.name: i.prepare(images) for i in impls}
    flops = with_model_flops({i.name: count_flops(i.encode, inputs[i.name])[1] for i in impls})
    samples, _ = interleaved({i.name: (lambda i=i: i.encode(inputs[i.name])) for i in impls}, repeats)
    return {"timing": timing_table(samples), "flops": flops, "agreement": embedding_agreement(impls)}


def click_part(impls, xy, repeats: int, clicks_per_sample: int) -> dict:
    """Clicks on the embedding set last; a sample is the mean of `clicks_per_sample` calls."""
    flops = with_model_flops({i.name: count_flops(i.click, xy)[1] for i in impls})

    def clicks(impl):
        return [impl.click(xy) for _ in range(clicks_per_sample)][-1]

    samples, last = interleaved({i.name: (lambda i=i: clicks(i)) for i in impls}, repeats)
    per_click = {name: [s / clicks_per_sample for s in values] for name, values in samples.items()}
    for impl in impls:  # an API that returns no logits (or only the best mask) gives them untimed for the check
        if hasattr(impl, "agreement_outputs"):
            last[impl.name] = impl.agreement_outputs(xy)
        elif hasattr(impl, "agreement_logits"):
            last[impl.name] = (impl.agreement_logits(xy), last[impl.name][1])
    ref_low, ref_masks = last["meta"]
    agreement = {name: logit_agreement(low, ref_low, masks, ref_masks) for name, (low, masks) in last.items()}
    return {"timing": timing_table(per_click), "flops": flops, "agreement": agreement}


def batch_part(impls, images, repeats: int) -> dict:
    """set_image_batch (transformers: a batch of pixel_values); seconds per image, after an untimed round (a new
    batch shape: torch.compile compiles again). APIs without a batched encoder (`batched = False`) sit out."""
    impls = [i for i in impls if getattr(i, "batched", True)]
    inputs = {i.name: i.prepare(images) for i in impls}
    samples, _ = interleaved({i.name: (lambda i=i: i.encode(inputs[i.name])) for i in impls}, repeats)
    per_image = {name: [s / len(images) for s in values] for name, values in samples.items()}
    return {"timing": timing_table(per_image), "agreement": embedding_agreement(impls)}


@torch.inference_mode()
def run_image(weights: Weights, height: int, width: int, repeats: int, batch_size: int = 4, clicks_per_sample=5,
              backends=()):  # fmt: skip
    """The image section's results (JSON-ready); `backends`: exported runtimes timed as rows sam2_hf[NAME]."""
    impls = load_image_implementations(weights, backends)
    images = list(synthetic_frames(batch_size, height, width))
    xy = object_clicks(1, height, width)[0]
    return {
        "settings": {"image_hw": [height, width], "batch_size": batch_size, "clicks_per_sample": clicks_per_sample,
                     "click": xy, "implementations": [i.name for i in impls],
                     "auto_engines": auto_engines({i.name: i.predictor for i in impls if hasattr(i, "predictor")})},
        "encoder": encoder_part(impls, images[:1], repeats),
        "click": click_part(impls, xy, repeats, clicks_per_sample),
        "batch": batch_part(impls, images, repeats),
    }  # fmt: skip
