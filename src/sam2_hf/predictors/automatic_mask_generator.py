"""`Sam2AutomaticMaskGenerator`: masks for everything in an image, a drop-in for Meta's
`sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator` (same arguments, defaults and records).

    generator = Sam2AutomaticMaskGenerator.from_pretrained("facebook/sam2.1-hiera-tiny")
    records = generator.generate(image)  # [{"segmentation", "area", "bbox", "predicted_iou", ...}]

A grid of single positive clicks covers the image (and, with `crop_n_layers`, overlapping crops of it);
each click gives up to three masks; masks are kept by predicted IoU and stability score, duplicates
removed by box non-maximum suppression (torchvision), and the survivors stored as COCO RLE
(pycocotools). The steps and their order are Meta's (`sam2/automatic_mask_generator.py`,
`sam2/utils/amg.py`), so the same weights give the same records. Differences: `min_mask_region_area`
fills holes and removes sprinkles on any device (Meta's step needs its CUDA kernel and is skipped
without it), and `generate` takes any image `to_rgb_pixels` reads.
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torchvision.ops import batched_nms, box_area, masks_to_boxes

from ..backends.protocol import Sam2Backend
from ..media.rle import decode_rle, encode_rle
from ..models.modeling import Sam2Model
from ..processing.image_processing import build_all_layer_point_grids, generate_crop_boxes, to_rgb_pixels
from ..processing.prompts import check_not_empty
from .image_predictor import Sam2ImagePredictor

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
CROP_EDGE_TOLERANCE = 20.0  # pixels: a box this close to a crop edge (not an image edge) was cut by the crop
GENERATOR_ARGS = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "mask_threshold",
    "box_nms_thresh",
    "crop_n_layers",
    "crop_nms_thresh",
    "crop_overlap_ratio",
    "crop_n_points_downscale_factor",
    "point_grids",
    "min_mask_region_area",
    "output_mode",
    "use_m2m",
    "multimask_output",
)


class Sam2AutomaticMaskGenerator:
    """Segment everything in an image with a SAM 2 model (Meta's `SAM2AutomaticMaskGenerator`).

    model: a `Sam2Model` (or `Sam2VideoModel`).
    points_per_side (32): clicks per side of the grid (points_per_side**2 clicks); None if `point_grids` is given.
    points_per_batch (64): clicks decoded together, in one mask-decoder call.
    pred_iou_thresh (0.8): keep masks whose predicted IoU is above it (no filter when <= 0).
    stability_score_thresh (0.95): keep masks whose stability score (IoU of the mask thresholded at
        mask_threshold +- stability_score_offset) is at least it (no filter when <= 0).
    stability_score_offset (1.0): the logit shift of the stability score.
    mask_threshold (0.0): logits above it are foreground.
    box_nms_thresh (0.7): box IoU above which a mask of one crop is a duplicate of a better-scored one.
    crop_n_layers (0): extra layers of crops; layer i has (2**i)**2 crops, each segmented on its own.
    crop_nms_thresh (0.7): box IoU for duplicates across crops (masks from smaller crops are preferred).
    crop_overlap_ratio (512 / 1500): overlap of neighbouring crops in layer 1, as a fraction of the
        image's short side (halved in each further layer).
    crop_n_points_downscale_factor (1): layer i's grid has points_per_side / factor**i points per side.
    point_grids (None): a list of (K, 2) numpy grids in [0, 1] (x, y), one per crop layer, instead of
        `points_per_side`.
    min_mask_region_area (0): if > 0, holes and islands of at most this many low-resolution pixels are
        flipped before upscaling (the image predictor's `max_hole_area` / `max_sprinkle_area`).
    output_mode ("binary_mask"): "binary_mask" ((H, W) bool), "uncompressed_rle" ({"size": [H, W],
        "counts": [int]}, column-major runs starting with background) or "coco_rle" (pycocotools'
        compressed {"size", "counts": str}).
    use_m2m (False): refine each mask once, feeding its low-resolution logits back with its click.
    multimask_output (True): three masks per click instead of one.
    backend (None): the compute (backends/protocol.py) its image predictor runs on: None or "torch", an exported
    runtime's name ("onnxruntime", "openvino", "torch-export"; backends/__init__.py) or a backend object.

    Other keywords are accepted and ignored, as by Meta's class. Raises ValueError for both or neither of
    points_per_side / point_grids, empty point_grids (`EmptyPromptError`), too few grids for the crop layers,
    or an unknown output_mode.

    Each batch of clicks is one `Sam2ImagePredictor.predict` call (one decoder call); its masks come back
    as CPU arrays, so filtering, NMS and RLE run on the CPU whatever the model's device.
    """

    def __init__(
        self,
        model: Sam2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        backend: str | Sam2Backend | None = None,
        **kwargs,
    ):
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("Exactly one of points_per_side or point_grids must be given.")
        check_not_empty(point_grids, "point_grids", "Sam2AutomaticMaskGenerator")  # [] or a grid of no points
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"Unknown output_mode {output_mode!r}; expected one of {OUTPUT_MODES}.")
        if point_grids is None:
            point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        if len(point_grids) < crop_n_layers + 1:
            raise ValueError(f"point_grids has {len(point_grids)} grids; crop_n_layers={crop_n_layers} needs "
                             f"{crop_n_layers + 1} (one per layer).")  # fmt: skip
        self.point_grids = [np.asarray(grid, dtype=np.float64) for grid in point_grids]
        self.predictor = Sam2ImagePredictor(
            model, max_hole_area=min_mask_region_area, max_sprinkle_area=min_mask_region_area, backend=backend
        )
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_pretrained(cls, model_id, **kwargs) -> Sam2AutomaticMaskGenerator:
        """A generator on `Sam2ImagePredictor.from_pretrained(model_id, ...)`'s model (Hub id, folder or
        Meta `.pt`). Generator arguments (`GENERATOR_ARGS`) go to the generator, the rest (`device`,
        `image_size`, ...) to model loading."""
        options = {k: kwargs.pop(k) for k in GENERATOR_ARGS if k in kwargs}
        return cls(Sam2ImagePredictor.from_pretrained(model_id, **kwargs).model, **options)

    @torch.inference_mode()
    def generate(self, image) -> list[dict]:
        """Masks for everything in `image` (numpy (H, W, C) / (H, W), PIL image or torch (C, H, W); uint8
        or floats in [0, 1]; see `to_rgb_pixels`).

        Returns one record per mask (an empty list when no mask passes the filters), in Meta's order:
        segmentation (per `output_mode`, at H x W), area (int, pixels), bbox ([x, y, w, h] floats, pixels,
        w / h from the first to the last foreground pixel), predicted_iou (float), point_coords ([[x, y]],
        the click in image pixels), stability_score (float), crop_box ([x, y, w, h] of the crop it came from).
        """
        pixels = to_rgb_pixels(image).cpu().numpy()
        height, width = pixels.shape[:2]
        crop_boxes, layers = generate_crop_boxes((height, width), self.crop_n_layers, self.crop_overlap_ratio)
        data = _concat([self._process_crop(pixels, box, layer) for box, layer in zip(crop_boxes, layers)])
        if len(crop_boxes) > 1:  # duplicates across crops: masks from smaller crops win
            data = _nms(data, 1 / box_area(data["crop_boxes"]), self.crop_nms_thresh)
        return [self._record(data, i) for i in range(len(data["rles"]))]

    def _record(self, data: dict, i: int) -> dict:
        rle = data["rles"][i]
        return {
            "segmentation": self._segmentation(rle),
            "area": int(mask_utils.area(rle)),
            "bbox": xyxy_to_xywh(data["boxes"][i]),
            "predicted_iou": data["iou_preds"][i].item(),
            "point_coords": [data["points"][i].tolist()],
            "stability_score": data["stability_score"][i].item(),
            "crop_box": xyxy_to_xywh(data["crop_boxes"][i].float()),
        }

    def _segmentation(self, rle: dict):
        if self.output_mode == "coco_rle":
            return rle
        mask = decode_rle(rle)
        return mask if self.output_mode == "binary_mask" else uncompressed_rle(mask)

    def _process_crop(self, pixels: np.ndarray, crop_box: list[int], layer: int) -> dict:
        """One crop's masks, deduplicated, as {boxes, points, crop_boxes (in image pixels), iou_preds,
        stability_score, rles (COCO RLE at the full image size)}."""
        x0, y0, x1, y1 = crop_box
        self.predictor.set_image(pixels[y0:y1, x0:x1])
        crop_hw = (y1 - y0, x1 - x0)
        points = torch.as_tensor(self.point_grids[layer] * np.array(crop_hw)[None, ::-1], dtype=torch.float32)
        batches = [
            self._process_batch(points[i : i + self.points_per_batch], crop_box, pixels.shape[:2])
            for i in range(0, len(points), self.points_per_batch)
        ]
        self.predictor.reset_predictor()
        data = _concat(batches)
        data = _nms(data, data["iou_preds"], self.box_nms_thresh)
        offset = torch.tensor([x0, y0], dtype=torch.float32)
        data["boxes"] = data["boxes"] + offset.repeat(2)
        data["points"] = data["points"] + offset
        data["crop_boxes"] = torch.tensor([crop_box] * len(data["rles"]), dtype=torch.int64).reshape(-1, 4)
        return data

    def _process_batch(self, points: torch.Tensor, crop_box: list[int], image_hw) -> dict:
        """(B, 2) clicks in crop pixels -> the masks that pass the filters, as in `_process_crop`
        (boxes still in crop pixels)."""
        masks, iou_preds, low_res = self._predict(points, multimask_output=self.multimask_output)
        per_click = masks.shape[0] // len(points)
        points = points.repeat_interleave(per_click, dim=0)
        if self.use_m2m:
            masks, iou_preds, _ = self._predict(points, mask_input=low_res[:, None], multimask_output=False)
        keep = iou_preds > self.pred_iou_thresh if self.pred_iou_thresh > 0 else slice(None)
        masks, iou_preds, points = masks[keep], iou_preds[keep], points[keep]
        stability = stability_score(masks, self.mask_threshold, self.stability_score_offset)
        keep = stability >= self.stability_score_thresh if self.stability_score_thresh > 0 else slice(None)
        masks, iou_preds, points, stability = masks[keep], iou_preds[keep], points[keep], stability[keep]
        masks = masks > self.mask_threshold
        boxes = masks_to_boxes(masks)
        keep = ~box_near_crop_edge(boxes, crop_box, [0, 0, image_hw[1], image_hw[0]])
        masks = uncrop_masks(masks[keep].numpy(), crop_box, image_hw)
        return {
            "boxes": boxes[keep],
            "points": points[keep],
            "iou_preds": iou_preds[keep],
            "stability_score": stability[keep],
            "rles": [encode_rle(mask) for mask in masks],
        }

    def _predict(self, points: torch.Tensor, mask_input=None, multimask_output=True):
        """Clicks (N, 2) in crop pixels, one positive click per prompt set, in chunks of `points_per_batch`
        (one decoder call each) -> masks (N * C, h, w) logits at the crop size, iou (N * C,), low-res
        logits (N * C, S/4, S/4), C masks per click."""
        outputs = []
        for i in range(0, len(points), self.points_per_batch):
            chunk = points[i : i + self.points_per_batch]
            masks, iou, low_res = self.predictor.predict(
                point_coords=chunk[:, None],
                point_labels=torch.ones(len(chunk), 1),
                mask_input=None if mask_input is None else mask_input[i : i + self.points_per_batch],
                multimask_output=multimask_output,
                return_logits=True,
            )
            # (B, C, ...) or, for B = 1, (C, ...) -> (B * C, ...)
            outputs.append((torch.from_numpy(masks).flatten(0, -3), torch.from_numpy(iou).flatten(),
                            torch.from_numpy(low_res).flatten(0, -3)))  # fmt: skip
        return tuple(torch.cat(parts) for parts in zip(*outputs))


def _concat(parts: list[dict]) -> dict:
    """Mask data {name: (N, ...) tensor, "rles": [N COCO RLEs]} of several parts as one."""
    data = {key: torch.cat([part[key] for part in parts]) for key in parts[0] if key != "rles"}
    data["rles"] = [rle for part in parts for rle in part["rles"]]
    return data


def _nms(data: dict, scores: torch.Tensor, iou_threshold: float) -> dict:
    """The masks of `data` whose boxes survive non-maximum suppression, best `scores` first."""
    keep = batched_nms(data["boxes"], scores, torch.zeros(len(scores), dtype=torch.int64), iou_threshold)
    out = {key: value[keep] for key, value in data.items() if key != "rles"}
    out["rles"] = [data["rles"][i] for i in keep.tolist()]
    return out


def stability_score(masks: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """(N, H, W) logits -> (N,) float32 IoU of the masks thresholded at mask_threshold + offset and
    mask_threshold - offset (the first lies inside the second); NaN for a mask empty at both."""
    inside = (masks > mask_threshold + offset).sum((-1, -2))
    outside = (masks > mask_threshold - offset).sum((-1, -2))
    return inside / outside


def box_near_crop_edge(boxes: torch.Tensor, crop_box: list[int], image_box: list[int]) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 boxes in crop pixels -> (N,) bool: within `CROP_EDGE_TOLERANCE` pixels of a
    crop edge that is not also an image edge (the mask was probably cut by the crop)."""
    crop, image = torch.tensor(crop_box, dtype=torch.float32), torch.tensor(image_box, dtype=torch.float32)
    boxes = boxes + crop[:2].repeat(2)
    near_crop = torch.isclose(boxes, crop[None], atol=CROP_EDGE_TOLERANCE, rtol=0)
    near_image = torch.isclose(boxes, image[None], atol=CROP_EDGE_TOLERANCE, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def uncrop_masks(masks: np.ndarray, crop_box: list[int], image_hw) -> np.ndarray:
    """(N, h, w) masks of a crop -> (N, H, W) at their place in the image, False elsewhere."""
    x0, y0, x1, y1 = crop_box
    height, width = image_hw
    return np.pad(masks, ((0, 0), (y0, height - y1), (x0, width - x1)))


def xyxy_to_xywh(box: torch.Tensor) -> list[float]:
    """x0, y0, x1, y1 -> [x0, y0, x1 - x0, y1 - y0] as Python floats."""
    x0, y0, x1, y1 = box.float()
    return [x0.item(), y0.item(), (x1 - x0).item(), (y1 - y0).item()]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """(H, W) bool -> {"size": [H, W], "counts": [int]}: run lengths in column-major order, the first run
    background (0 when the first pixel is foreground), the uncompressed RLE pycocotools' `frPyObjects` reads."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": [0] + counts if flat[0] else counts}
