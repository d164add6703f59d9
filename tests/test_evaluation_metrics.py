"""J and F per frame (DAVIS 2017 toolkit's functions): exact hand-made cases, and random masks against a plain,
loop-by-loop reference written here from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2_hf.evaluation import db_eval_boundary, db_eval_iou, db_statistics
from sam2_hf.evaluation.layout import DAVIS_PALETTE


def square(h=40, w=60, y0=10, x0=10, size=12):
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def test_identical_masks_score_one():
    m = square()
    assert db_eval_iou(m, m) == 1.0
    assert db_eval_boundary(m, m) == 1.0


def test_disjoint_masks_score_zero():
    a, b = square(x0=2), square(x0=40)  # 26 px apart: far beyond the tolerance (ceil(0.008 * 72.1) = 1 px)
    assert db_eval_iou(a, b) == 0.0
    assert db_eval_boundary(a, b) == 0.0


def test_one_pixel_shift():
    s = 12
    a, b = square(size=s), square(size=s, x0=11)
    assert db_eval_iou(a, b) == pytest.approx((s - 1) * s / ((s + 1) * s))
    assert db_eval_boundary(a, b) == 1.0  # every boundary pixel is within the 1-pixel tolerance


def test_empty_masks():
    empty, m = np.zeros((20, 30), dtype=bool), square(20, 30, 2, 2, 5)
    assert db_eval_iou(empty, empty) == 1.0 and db_eval_boundary(empty, empty) == 1.0
    assert db_eval_iou(m, empty) == 0.0 and db_eval_boundary(m, empty) == 0.0
    assert db_eval_iou(empty, m) == 0.0 and db_eval_boundary(empty, m) == 0.0


def test_void_pixels_leave_the_count():
    a, b = square(size=10), square(size=10, x0=15)  # overlap 5 columns: J = 50 / 150
    void = np.zeros_like(a)
    void[:, 20:] = True  # removes b's 5 extra columns
    assert db_eval_iou(a, b) == pytest.approx(50 / 150)
    assert db_eval_iou(a, b, void) == pytest.approx(50 / 100)


def test_video_inputs_give_per_frame_values():
    a = np.stack([square(), square(), np.zeros((40, 60), bool)])
    b = np.stack([square(), square(x0=40), np.zeros((40, 60), bool)])
    np.testing.assert_array_equal(db_eval_iou(a, b), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(db_eval_boundary(a, b), [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="differ in shape"):
        db_eval_iou(a, b[:2])


def test_db_statistics_mean_recall_decay():
    values = [1, 1, 1, 0.5, 0.5, 0, 0, 0]  # bins of 8 frames: [0:3], [2:4], [3:6], [5:8]
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.5) and recall == pytest.approx(3 / 8) and decay == pytest.approx(1.0)


def test_davis_palette_is_the_tools_bytes():
    # The first 12 colours of DAVIS_PALETTE in Meta's tools/vos_inference.py, and the last one.
    start = b"\x00\x00\x00\x80\x00\x00\x00\x80\x00\x80\x80\x00\x00\x00\x80\x80\x00\x80\x00\x80\x80\x80\x80\x80"
    start += b"@\x00\x00\xc0\x00\x00@\x80\x00\xc0\x80\x00@\x00\x80\xc0\x00\x80"
    assert len(DAVIS_PALETTE) == 768 and DAVIS_PALETTE.startswith(start) and DAVIS_PALETTE.endswith(b"\xe0\xe0\xc0")


# ------------------------------------------------------------------------------ plain reference
def plain_iou(a, b):
    inter = union = 0
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            inter += bool(a[y, x] and b[y, x])
            union += bool(a[y, x] or b[y, x])
    return 1.0 if union == 0 else inter / union


def plain_boundary(m):
    """Boundary pixels by the definition: a pixel differing from its right, lower or lower-right neighbour; on
    the last row only the right one counts, on the last column only the lower one, never the last pixel."""
    h, w = m.shape
    points = set()
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                neighbours = [(y, x + 1)]
            elif x == w - 1:
                neighbours = [(y + 1, x)]
            else:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            if any(m[v, u] != m[y, x] for v, u in neighbours):
                points.add((y, x))
    return points


def plain_f(gt, pred, radius):
    """F of boundary pixels matched within Euclidean distance `radius` (a disk), precision on the prediction."""
    bg, bp = plain_boundary(gt), plain_boundary(pred)
    if not bg or not bp:
        return float(not bg and not bp)

    def matched(points, others):
        return sum(any((y - v) ** 2 + (x - u) ** 2 <= radius**2 for v, u in others) for y, x in points)

    precision, recall = matched(bp, bg) / len(bp), matched(bg, bp) / len(bg)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def random_mask(rng, h, w):
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(rng.integers(0, 4)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(1, h // 2), rng.integers(1, w // 2)
        yy, xx = np.mgrid[0:h, 0:w]
        mask |= ((yy - y) / ry) ** 2 + ((xx - x) / rx) ** 2 <= 1
    return mask ^ (rng.random((h, w)) < 0.02)  # speckles make ragged boundaries


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_match_plain_reference(seed):
    rng = np.random.default_rng(seed)
    h, w = 18 + seed, 24 + 2 * seed
    bound_th = (0.008, 0.08, 2)[seed % 3]  # radius 1, 3 and 2 pixels
    values = []
    for i in range(4):
        gt = random_mask(rng, h, w)
        pred = random_mask(rng, h, w) if i % 2 else gt ^ (rng.random((h, w)) < 0.05)  # unrelated / close
        assert db_eval_iou(gt, pred) == pytest.approx(plain_iou(gt, pred), abs=1e-12)
        radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
        expected = plain_f(gt, pred, radius)
        assert db_eval_boundary(gt, pred, bound_th=bound_th) == pytest.approx(expected, abs=1e-12)
        values += [plain_iou(gt, pred), expected]
    assert sum(0 < v < 1 for v in values) >= 6, values  # most cases are not decided by an edge rule
