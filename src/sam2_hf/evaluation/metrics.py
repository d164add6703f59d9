"""Per-frame region (J) and boundary (F) measures of video object segmentation.

The functions keep the names, signatures and conventions of the DAVIS 2017 toolkit
(davisvideochallenge/davis2017-evaluation, `davis2017/metrics.py` and `davis2017/utils.py`), so code
written for it ports by changing the import:

    from sam2_hf.evaluation import db_eval_iou, db_eval_boundary, db_statistics

Masks are (H, W) or (T, H, W) arrays read as booleans (anything non-zero is foreground). The boundary
dilation uses OpenCV with scikit-image's disk, as the toolkit does, so F matches it bit for bit.
Meta's SA-V evaluator (`sav_dataset/utils/sav_benchmark.py`, from hkchengrex/vos-benchmark) computes
J and F per frame the same way (same empty-mask rules, same 0.008 tolerance, no void pixels).
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from skimage.morphology import disk

BOUND_TH = 0.008  # boundary tolerance: a fraction of the image diagonal (or pixels when >= 1)


def _check_shapes(annotation: np.ndarray, segmentation: np.ndarray, void_pixels) -> None:
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape.")
    if void_pixels is not None and np.shape(void_pixels) != annotation.shape:
        raise ValueError(f"annotation {annotation.shape} and void_pixels {np.shape(void_pixels)} differ in shape.")
    if annotation.ndim not in (2, 3):
        raise ValueError(f"masks must be (H, W) or (T, H, W); got {annotation.ndim} dimensions {annotation.shape}.")


def db_eval_iou(annotation, segmentation, void_pixels=None):
    """Region similarity J: the Jaccard index (IoU) of two binary masks (DAVIS 2017 toolkit's `db_eval_iou`).

    annotation, segmentation: (H, W) or (T, H, W) masks (bool, or any dtype: non-zero is foreground).
    void_pixels: optional mask of the same shape; those pixels are left out of both counts.
    Returns a float for (H, W), a (T,) float64 array for (T, H, W): |A & S| / |A | S|, and 1 where the
    union is empty (an empty prediction of an empty ground truth is right), as the toolkit does.
    Raises ValueError for shapes that differ or are not 2-D / 3-D.
    """
    annotation, segmentation = np.asarray(annotation).astype(bool), np.asarray(segmentation).astype(bool)
    _check_shapes(annotation, segmentation, void_pixels)
    keep = ~np.asarray(void_pixels, dtype=bool) if void_pixels is not None else np.ones_like(annotation)
    inters = np.sum(segmentation & annotation & keep, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & keep, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inters / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=BOUND_TH):
    """Boundary accuracy F (DAVIS 2017 toolkit's `db_eval_boundary`): per frame, the F-measure of the
    boundary pixels of `segmentation` matched to those of `annotation` within `bound_th`.

    annotation, segmentation: (H, W) or (T, H, W) masks; void_pixels: optional, same shape (masked out
    of both masks before their boundaries are taken). bound_th: tolerance as a fraction of the image
    diagonal (the radius is ceil(bound_th * sqrt(H^2 + W^2)) pixels), or in pixels when >= 1.
    Returns a float for (H, W), a (T,) float64 array for (T, H, W). Raises ValueError for bad shapes.
    """
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _check_shapes(annotation, segmentation, void_pixels)
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th)
    voids = [None] * len(annotation) if void_pixels is None else void_pixels
    return np.array([f_measure(s, a, v, bound_th) for s, a, v in zip(segmentation, annotation, voids)])


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=BOUND_TH) -> float:
    """F-measure of the boundaries of two (H, W) masks (the toolkit's `f_measure`; argument order as there:
    prediction first). Boundaries are `seg2bmap`'s; each is dilated by a disk of the tolerance radius
    (cv2.dilate with skimage's `disk`), precision = predicted boundary pixels within reach of the ground
    truth's / all predicted boundary pixels, recall the other way round. Empty boundaries: none on either
    side -> precision = recall = 1 (F = 1); only the prediction's empty -> P 1, R 0; only the ground
    truth's -> P 0, R 1 (F = 0 either way). Returns F = 2PR / (P + R), 0 when P + R = 0."""
    keep = ~np.asarray(void_pixels, dtype=bool) if void_pixels is not None else True
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(np.shape(foreground_mask)))
    fg_boundary = seg2bmap(np.asarray(foreground_mask, dtype=bool) & keep)
    gt_boundary = seg2bmap(np.asarray(gt_mask, dtype=bool) & keep)
    kernel = disk(bound_pix).astype(np.uint8)
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    n_fg, n_gt = int(fg_boundary.sum()), int(gt_boundary.sum())
    if n_fg == 0 or n_gt == 0:
        precision, recall = float(n_fg == 0), float(n_gt == 0)
    else:
        precision = np.sum(fg_boundary & gt_dil) / n_fg
        recall = np.sum(gt_boundary & fg_dil) / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def seg2bmap(seg) -> np.ndarray:
    """(H, W) mask -> (H, W) bool map of its 1-pixel-wide boundary (the toolkit's `_seg2bmap` at full size,
    D. Martin's BSDS code): a pixel is on the boundary where it differs from its right, lower or
    lower-right neighbour; the last row compares to the right only, the last column downward only, and
    the bottom-right pixel is never a boundary (boundaries sit half a pixel towards the origin)."""
    seg = np.asarray(seg, dtype=bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def db_statistics(per_frame_values) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame J or F values (the toolkit's `utils.db_statistics`).

    per_frame_values: (T,) floats in [0, 1] (NaN ignored). Returns (M, R, D): M the mean; R the fraction
    of frames above 0.5; D the mean of the first quarter of the frames minus that of the last quarter
    (four bins of `round(linspace(1, T, 5))`, the toolkit's binning; int indices, where the toolkit's uint8
    ones wrap past 255 frames).
    """
    values = np.asarray(per_frame_values, dtype=np.float64)
    with warnings.catch_warnings():  # all-NaN slices give NaN, as in the toolkit
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean, recall = np.nanmean(values), np.nanmean(values > 0.5)
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)
