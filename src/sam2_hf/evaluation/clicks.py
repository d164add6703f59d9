"""Interactive image segmentation with simulated clicks: 1-click and 5-click mIoU (the SAM / SAM 2 papers'
protocol, from RITM): the first click at the object's interior point farthest from its boundary, each
next one at that same point of the largest error region, positive where the object was missed, negative
where background was taken.

    predictor = Sam2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-large")
    ious = evaluate_clicks(predictor, image, gt_masks, num_clicks=5)   # (N, 5): IoU after each click
    result = evaluate_coco(predictor, "instances_val.json", "images/", num_clicks=5)
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from ..media.rle import decode_segmentation
from ..processing.image_processing import to_rgb_pixels
from ..processing.mask_postprocessing import EIGHT_CONNECTED
from ..processing.prompts import NEGATIVE, POSITIVE
from ..processing.validation import read_json_file
from .metrics import db_eval_iou


def next_click(gt_mask, pred_mask=None) -> tuple[int, int, int] | None:
    """The next simulated click for a ground-truth mask given the current prediction -> (x, y, label) in pixels,
    label 1 (positive: the region is missed foreground) or 0 (negative: a false positive), or None when the
    prediction equals the ground truth.

    gt_mask, pred_mask: (H, W) masks (non-zero = foreground); pred_mask None means nothing predicted yet (the
    first click then lands in the object). The error regions are the 8-connected components of the missed
    foreground and of the false positives; the largest by area is chosen (missed foreground first on a
    tie), and the click goes to its pixel farthest from the region's boundary (exact Euclidean distance
    transform, the image border counting as boundary; the first such pixel in row-major order on a tie).
    This is the protocol as issue 14 states it for the SAM / SAM 2 papers ("the largest error region"); RITM's
    evaluation and Meta's training clicks (`sam2_hf.training.prompting.sample_point_from_error_center`) take
    instead the deepest pixel of all missed or all false-positive pixels, whichever is deeper.
    Raises ValueError for masks that are not (H, W) or differ in shape.
    """
    gt = np.asarray(gt_mask).astype(bool)
    pred = np.zeros_like(gt) if pred_mask is None else np.asarray(pred_mask).astype(bool)
    if gt.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"next_click needs two (H, W) masks of one shape; got {gt.shape} and {pred.shape}.")
    best, best_area, best_label = None, 0, POSITIVE
    for errors, label in ((gt & ~pred, POSITIVE), (pred & ~gt, NEGATIVE)):
        components, count = ndimage.label(errors, structure=EIGHT_CONNECTED)
        if count:
            areas = np.bincount(components.ravel())[1:]
            k = int(np.argmax(areas))
            if areas[k] > best_area:
                best, best_area, best_label = components == k + 1, int(areas[k]), label
    if best is None:
        return None
    distance = ndimage.distance_transform_edt(np.pad(best, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y), best_label


def evaluate_clicks(predictor, image, gt_masks, num_clicks: int = 5, use_previous_logits: bool = True) -> np.ndarray:
    """IoU of each object's mask after each simulated click on one image -> (N, num_clicks) float64.

    predictor: a `Sam2ImagePredictor` (any model, e.g. one being fine-tuned). image: what its `set_image`
    takes ((H, W, 3) uint8 RGB array or PIL image). gt_masks: (N, H, W) or a list of (H, W) masks.
    All N objects are prompted as one batch per click. Click 1 asks for three masks and keeps the one with
    the highest predicted IoU (SAM's answer to an ambiguous click); later clicks ask for one mask given all
    clicks so far and, with `use_previous_logits`, the previous low-resolution logits as mask input.
    Clicks come from `next_click` (integer pixel coordinates, which the prompt encoder shifts to the pixel
    centre as for any click); an object predicted exactly gets no
    more clicks and keeps its IoU. IoU as `db_eval_iou` (empty on empty = 1).
    Raises ValueError for masks whose size is not the image's.
    """
    gt = np.stack([np.asarray(m).astype(bool) for m in gt_masks]) if len(gt_masks) else np.zeros((0, 1, 1), bool)
    size = tuple(to_rgb_pixels(image).shape[:2])
    if gt.shape[1:] != size:
        raise ValueError(f"gt_masks are {gt.shape[1:]}, the image is {size}.")
    predictor.set_image(image)
    n = len(gt)
    ious = np.zeros((n, num_clicks))
    pred = np.zeros_like(gt)
    points, labels = np.zeros((n, 0, 2), np.float32), np.zeros((n, 0), np.int64)
    logits, active = None, np.arange(n)
    for k in range(num_clicks):
        clicks = [next_click(gt[i], pred[i] if k else None) for i in active]
        keep = [c is not None for c in clicks]
        active, clicks = active[keep], [c for c in clicks if c is not None]
        if len(active):
            new_points = np.array([[[x, y]] for x, y, _ in clicks], np.float32)
            points = np.concatenate([points[keep], new_points], axis=1)
            labels = np.concatenate([labels[keep], [[label] for *_, label in clicks]], axis=1)
            mask_input = logits[keep] if (k and use_previous_logits) else None
            pred[active], logits = _predict(predictor, points, labels, mask_input, multimask=k == 0)
        ious[:, k] = [db_eval_iou(g, p) for g, p in zip(gt, pred)]
    return ious


def _predict(predictor, points, labels, mask_input, multimask: bool):
    """Batched prompts -> ((B, H, W) bool masks, (B, 1, h, w) low-resolution logits of the kept masks)."""
    batched = len(points) > 1
    masks, scores, low_res = predictor.predict(
        point_coords=points if batched else points[0],
        point_labels=labels if batched else labels[0],
        mask_input=None if mask_input is None else (mask_input if batched else mask_input[0]),
        multimask_output=multimask,
    )
    if not batched:
        masks, scores, low_res = masks[None], scores[None], low_res[None]
    best = np.argmax(scores, axis=1) if multimask else np.zeros(len(masks), dtype=int)
    rows = np.arange(len(masks))
    return masks[rows, best] > 0, low_res[rows, best][:, None]


def load_coco(annotation_file):
    """A pycocotools `COCO` index of `annotation_file` (its loading messages silenced). Raises
    FileNotFoundError for a missing file, ValueError naming the file for one that is not COCO JSON."""
    from pycocotools.coco import COCO

    if not Path(annotation_file).is_file():
        raise FileNotFoundError(f"No COCO annotation file at {annotation_file}.")
    coco = COCO()
    coco.dataset = read_json_file(annotation_file)
    if not isinstance(coco.dataset, dict) or not {"images", "annotations"} <= set(coco.dataset):
        raise ValueError(f"{annotation_file}: not a COCO annotation file (no 'images' and 'annotations').")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError) as error:
        raise ValueError(f"{annotation_file}: not a COCO annotation file ({error!r} in an entry).") from error
    return coco


def _annotation_mask(annotation_file, annotation: dict, info: dict) -> np.ndarray:
    try:
        return decode_segmentation(annotation.get("segmentation"), info["height"], info["width"])
    except (KeyError, ValueError) as error:
        where = f"annotation {annotation.get('id')} of image {info.get('id')}"
        raise ValueError(f"{annotation_file}: {where}: {error}") from None


def evaluate_coco(
    predictor, annotation_file, image_dir, num_clicks: int = 5, max_images=None, min_area: float = 0, progress=True
) -> dict:
    """Click-based mIoU of a `Sam2ImagePredictor` on a COCO-format dataset (instances with polygon or RLE
    segmentations; crowd annotations left out).

    image_dir: the folder holding each image's `file_name`. max_images: the first images by id only.
    min_area: leave out instances of a smaller area (pixels). Returns {"num_images", "num_masks",
    "miou": [mIoU after click 1, ..., after click num_clicks]} (means over all masks, in [0, 1]).
    Raises FileNotFoundError naming a missing image.
    """
    coco = load_coco(annotation_file)
    image_ids = sorted(coco.getImgIds())[:max_images]
    all_ious = []
    for image_id in tqdm(image_ids, desc="click mIoU", unit="image", disable=not progress):
        info = coco.loadImgs(image_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
        if min_area > 0:  # "area" is optional in COCO files: the mask's pixel count where it is missing
            anns = [a for a in anns if a.get("area", float(mask_utils.area(coco.annToRLE(a)))) >= min_area]
        if not anns:
            continue
        path = Path(image_dir) / info["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"Image {info['file_name']!r} (id {image_id}) is not in {image_dir}.")
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        masks = [_annotation_mask(annotation_file, a, info) for a in anns]
        all_ious.append(evaluate_clicks(predictor, rgb, masks, num_clicks))
    ious = np.concatenate(all_ious) if all_ious else np.zeros((0, num_clicks))
    miou = [float(v) for v in ious.mean(axis=0)] if len(ious) else [float("nan")] * num_clicks
    return {"num_images": len(all_ious), "num_masks": len(ious), "miou": miou}
