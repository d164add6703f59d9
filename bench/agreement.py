"""Do the timed runs give the reference's answer? Mask logits vs Meta's, and masks of a non-exact option vs exact.

A faster wrong answer does not count, so every table of times carries these columns.
"""

from __future__ import annotations

import numpy as np


def as_numpy(x) -> np.ndarray:
    return x.float().cpu().numpy() if hasattr(x, "cpu") else np.asarray(x, dtype=np.float32)


def logit_agreement(logits, reference_logits, masks=None, reference_masks=None) -> dict:
    """Max abs difference of two logit arrays and how many pixels differ in sign (mask pixels that flip).

    `masks` / `reference_masks`: the binary masks to count flips on when they are not the logits' signs
    (e.g. an image predictor's full-resolution masks next to its low-resolution logits)."""
    a, b = as_numpy(logits), as_numpy(reference_logits)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    ma = as_numpy(masks) > 0 if masks is not None else a > 0
    mb = as_numpy(reference_masks) > 0 if reference_masks is not None else b > 0
    return {
        "max_abs_logit_diff": float(np.abs(a - b).max()),
        "sign_mismatch_pixels": int((ma != mb).sum()),
        "pixels": int(mb.size),
        "reference_foreground_pixels": int(mb.sum()),
    }


def mask_agreement(masks, reference_logits) -> dict:
    """`logit_agreement` for an API that returns binary masks only: pixels of other sign; no logit difference (None)."""
    check = logit_agreement(reference_logits, reference_logits, masks=masks)
    return {**check, "max_abs_logit_diff": None}


def worst(rows: list[dict]) -> dict:
    """The worst of several agreement checks (e.g. over the timed frames)."""
    diffs = [r["max_abs_logit_diff"] for r in rows if r["max_abs_logit_diff"] is not None]
    return {
        "max_abs_logit_diff": max(diffs) if diffs else None,
        "sign_mismatch_pixels": max(r["sign_mismatch_pixels"] for r in rows),
        "pixels": rows[0]["pixels"],
        "reference_foreground_pixels": rows[0]["reference_foreground_pixels"],
        "checks": len(rows),
    }


def mask_iou(logits, reference_logits) -> list[float]:
    """IoU per object of masks thresholded at 0; (N, ...) arrays. An object empty in both counts as 1."""
    a, b = as_numpy(logits) > 0, as_numpy(reference_logits) > 0
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    inter, union = (a & b).sum(1), (a | b).sum(1)
    return [float(i / u) if u else 1.0 for i, u in zip(inter, union)]
