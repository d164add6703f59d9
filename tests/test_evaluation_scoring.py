"""Sequence- and dataset-level J&F with the DAVIS 2017 toolkit's and the SA-V evaluator's conventions, from memory
and from palette / per-object PNG folders, and their CSV reports."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sam2_hf.evaluation import db_eval_boundary, db_eval_iou, score_folder, score_video, summarize, write_results
from sam2_hf.evaluation.layout import DAVIS_PALETTE, put_per_obj_mask, save_ann_png, save_frame_masks


def box(t, h=32, w=48, x0=4, size=8):
    masks = np.zeros((t, h, w), dtype=bool)
    masks[:, 4 : 4 + size, x0 : x0 + size] = True
    return masks


def test_davis_protocol_leaves_out_first_and_last_frame():
    gt = {1: box(5), 2: box(5, x0=30)}
    pred = {1: box(5).copy()}  # object 2 never predicted: scored as empty (J = 0)
    pred[1][0] = False  # the first and last frames do not count
    pred[1][4] = False
    pred[1][2] = box(1, x0=5)[0]  # one-pixel shift on a scored frame
    scores = score_video(gt, pred, "davis", "seq")
    assert [(s.obj_id, list(s.frames)) for s in scores] == [(1, [1, 2, 3]), (2, [1, 2, 3])]
    np.testing.assert_allclose(scores[0].j, [1, 7 / 9, 1])
    np.testing.assert_array_equal(scores[1].j, [0, 0, 0])
    summary = summarize(scores)
    assert summary["J-Mean"] == pytest.approx((1 + 7 / 9 + 1) / 6)
    assert summary["J&F-Mean"] == pytest.approx((summary["J-Mean"] + summary["F-Mean"]) / 2)
    with pytest.raises(ValueError, match="not in the ground truth"):
        score_video(gt, {3: box(5)}, "davis", "seq")


def test_sav_protocol_starts_objects_at_their_first_appearance():
    gt = {1: box(6), 2: box(6, x0=30)}
    gt[2][:3] = False  # object 2 enters on frame 3
    gt[3] = np.zeros_like(gt[1])  # never in the scored ground truth: not reported
    gt[3][0] = True
    pred = {1: box(6), 2: box(6, x0=30)}
    pred[2][:2] = False  # predicted from frame 2, one frame early: that frame counts as J = 0
    scores = score_video(gt, pred, "sav", "seq")
    assert [(s.obj_id, list(s.frames)) for s in scores] == [(1, [1, 2, 3, 4]), (2, [2, 3, 4])]
    np.testing.assert_array_equal(scores[1].j, [0, 1, 1])
    davis = score_video({1: gt[1], 2: gt[2]}, pred, "davis", "seq")
    np.testing.assert_array_equal(davis[1].j, [1, 0, 1, 1])  # DAVIS scores every frame (empty on empty = 1)


def write_palette(folder, labels):
    folder.mkdir(parents=True)
    for t, frame in enumerate(labels):
        save_ann_png(folder / f"{t:05d}.png", frame.astype(np.uint8), DAVIS_PALETTE)


def test_palette_folders_and_csv_reports(tmp_path):
    rng = np.random.default_rng(0)
    gt = np.zeros((5, 32, 48), dtype=np.uint8)
    gt[:, 4:14, 4:14], gt[:, 18:28, 20:40] = 1, 2
    pred = gt.copy()
    pred[rng.random(gt.shape) < 0.05] = 0  # holes change J and F
    write_palette(tmp_path / "gt" / "seq", gt)
    write_palette(tmp_path / "pred" / "seq", pred)
    scores = score_folder(tmp_path / "gt", tmp_path / "pred", "davis", progress=False)
    for obj_id, s in zip((1, 2), scores):
        np.testing.assert_allclose(s.j, db_eval_iou(gt[1:-1] == obj_id, pred[1:-1] == obj_id))
        np.testing.assert_allclose(s.f, db_eval_boundary(gt[1:-1] == obj_id, pred[1:-1] == obj_id))
        assert 0 < s.j_mean < 1 and 0 < s.f_mean < 1
    global_csv, sequence_csv = write_results(scores, tmp_path / "out", "davis")
    rows = list(csv.reader(global_csv.read_text().splitlines()))
    assert rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert float(rows[1][1]) == pytest.approx(summarize(scores)["J-Mean"], abs=5e-4)
    assert [r[0] for r in csv.reader(sequence_csv.read_text().splitlines())] == ["Sequence", "seq_1", "seq_2"]
    (sav_csv,) = write_results(scores, tmp_path / "out", "sav")
    lines = sav_csv.read_text().splitlines()
    assert lines[1].startswith("Global score") and lines[2].startswith("seq         ,001,")

    (tmp_path / "pred" / "seq" / "00000.png").unlink()  # never scored: the tools do not need it
    again = score_folder(tmp_path / "gt", tmp_path / "pred", "davis", progress=False)
    assert [s.j.tolist() for s in again] == [s.j.tolist() for s in scores]
    (tmp_path / "pred" / "seq" / "00003.png").unlink()
    with pytest.raises(ValueError, match="00003.png is missing"):
        score_folder(tmp_path / "gt", tmp_path / "pred", "davis", progress=False)


def test_per_object_folders(tmp_path):
    masks = {1: box(4), 2: box(4, x0=30)}
    for root, shift in (("gt", 0), ("pred", 1)):
        for t in range(4):
            frame = {k: np.roll(m[t], shift * k, axis=1) for k, m in masks.items()}
            save_frame_masks(tmp_path / root / "vid", f"{t:05d}", frame, 32, 48, True, DAVIS_PALETTE)
    scores = score_folder(tmp_path / "gt", tmp_path / "pred", "sav", progress=False)
    assert [s.obj_id for s in scores] == [1, 2]
    np.testing.assert_allclose(scores[0].j, [7 / 9] * 2)  # shifted by 1 pixel
    np.testing.assert_allclose(scores[1].j, [6 / 10] * 2)  # shifted by 2 pixels
    assert put_per_obj_mask({1: masks[1][0], 2: masks[1][0]}, 32, 48).max() == 1  # overlap: smallest id wins
