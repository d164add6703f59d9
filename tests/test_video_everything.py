"""Segment everything in a video: `Sam2Tracker.track(video)` without prompts.

It stands for a composition of Meta's tools: Meta's automatic mask generator on frame 0, each mask added
with Meta's `add_new_mask`, then `propagate_in_video`; the same weights must give the same masklets.
The rule adding objects later (generation every K frames, a mask matching no tracked object is new) is
tested with a generator stub.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf import Sam2Tracker
from sam2_hf.media.synthetic import save_jpeg_folder, synthetic_clip
from sam2_hf.predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from test_video_parity import TOLERANCE, patch_reference_memory_dtype

from reference import double_precision, meta_in_double

S = 256
# Lowered for random weights (equally on both sides); no box NMS, so several masks become objects.
OPTIONS = dict(
    points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.05, stability_score_offset=0.05, box_nms_thresh=1.0
)
MAX_OBJECTS = 4


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return save_jpeg_folder(synthetic_clip(num_frames=6, height=96, width=128), tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def reference(video_reference):
    return video_reference("2.1", content=True)


def tracker(reference) -> Sam2Tracker:
    return Sam2Tracker.from_pretrained(reference.path, image_size=S, fill_hole_area=0)


def meta_composition(meta, folder: str) -> dict:
    """Meta's generator on frame 0 -> `add_new_mask` per mask (best predicted IoU first, capped) ->
    `propagate_in_video`: {frame: (objects, 1, H, W) logits}."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(meta, **OPTIONS)
    generator.predictor._bb_feat_sizes = [(S // 4, S // 4), (S // 8, S // 8), (S // 16, S // 16)]  # set for 1024
    records = generator.generate(np.array(Image.open(f"{folder}/00000.jpg")))
    records = sorted(records, key=lambda r: -r["predicted_iou"])[:MAX_OBJECTS]
    state = meta.init_state(folder)
    for obj_id, record in enumerate(records, start=1):
        meta.add_new_mask(state, 0, obj_id, record["segmentation"])
    return {t: logits.float() for t, _, logits in meta.propagate_in_video(state)}, len(records)


def test_everything_matches_meta_composition(clip, reference):
    """On the content-bearing weights, both sides in float64 (why: tests/test_video_parity.py)."""
    meta = reference.new_meta()  # patched below
    meta.fill_hole_area = 0  # the reference's hole filling is CUDA-only
    patch_reference_memory_dtype(meta)
    meta_in_double(meta)
    with torch.inference_mode(), double_precision():
        theirs, num_objects = meta_composition(meta, clip)
    ours = tracker(reference)
    ours.predictor.model.to(torch.float64)
    generator = Sam2AutomaticMaskGenerator(ours.predictor.model, **OPTIONS)
    with double_precision():
        masklets = ours.track(clip, generator=generator, max_objects=MAX_OBJECTS, progress=False)

    assert masklets.obj_ids == list(range(1, num_objects + 1)) and masklets.frames() == sorted(theirs)
    worst = 0.0
    for t, logits in theirs.items():
        for k, obj_id in enumerate(masklets.obj_ids):
            differ = masklets.mask(t, obj_id) != (logits[k, 0] > 0).numpy()
            worst = max(worst, logits[k, 0][torch.from_numpy(differ)].abs().max().item() if differ.any() else 0.0)
    print(f"\n{num_objects} objects, {len(theirs)} frames; largest |reference logit| where masks differ: {worst:.2e}")
    assert worst <= TOLERANCE

    # Not vacuous: several objects, partial masks that differ between objects and move between frames.
    areas = np.array([[masklets.mask(t, i).mean() for i in masklets.obj_ids] for t in masklets.frames()])
    print(f"mask areas (frames x objects):\n{areas.round(4)}")
    assert num_objects >= 2 and (areas < 1).all() and (areas > 0).mean() >= 0.75
    # (Without box NMS two grid points can pick the same object: measured, 3 distinct masks of 4 on frame 0.)
    assert len({round(a, 4) for a in areas[0]}) >= 3 and not np.allclose(areas[0], areas[-1])


class StubGenerator:
    """Reports `masks_by_call[i]` on its i-th call (calls come on frames 0, K, 2K, ...)."""

    def __init__(self, masks_by_call):
        self.masks_by_call, self.calls = masks_by_call, 0

    def generate(self, image):
        masks = self.masks_by_call[self.calls] if self.calls < len(self.masks_by_call) else []
        self.calls += 1
        return [{"segmentation": m, "predicted_iou": 0.9 - 0.1 * i} for i, m in enumerate(masks)]


def square(y, x, size, shape=(96, 128)):
    mask = np.zeros(shape, dtype=bool)
    mask[y : y + size, x : x + size] = True
    return mask


def test_new_objects_every_k_frames(clip, reference):
    ours, k = tracker(reference), 3
    first = [square(10, 10, 30), square(50, 70, 30)]
    before = ours.track(clip, generator=StubGenerator([first]), new_objects_every=k, progress=False)
    assert before.obj_ids == [1, 2]
    seen = before.masks(k)
    newcomer = square(80, 0, 8)
    overlap = [(seen[i] & newcomer).sum() / (seen[i] | newcomer).sum() for i in (1, 2)]
    assert max(overlap) <= 0.3 and 0 < seen[1].mean() < 1  # the newcomer is new, object 1 is a real mask
    stub = StubGenerator([first, [seen[1], newcomer]])  # object 1 found again, and one new object
    after = ours.track(clip, generator=stub, new_objects_every=k, progress=False)

    assert stub.calls == 2 and after.obj_ids == [1, 2, 3]
    assert after.frames(3) == list(range(k, 6)) and after.frames(1) == after.frames(2) == list(range(6))
    assert all(np.array_equal(after.mask(t, i), before.mask(t, i)) for t in range(6) for i in (1, 2))

    capped = ours.track(clip, generator=StubGenerator([first, [newcomer]]), new_objects_every=k, max_objects=2,
                        progress=False)  # fmt: skip
    assert capped.obj_ids == [1, 2]


def test_nothing_found_and_bad_options(clip, reference):
    ours = tracker(reference)
    empty = ours.track(clip, generator=StubGenerator([]), progress=False)
    assert empty.obj_ids == [] and empty.frames() == list(range(6))  # every processed frame is kept, objects or not
    with pytest.raises(ValueError, match="new_objects_every"):
        ours.track(clip, generator=StubGenerator([]), new_objects_every=0)
    with pytest.raises(ValueError, match="forward from frame 0"):
        ours.track(clip, direction="backward")
    with pytest.raises(TypeError, match="apply only without prompts"):
        ours.track(clip, [], new_objects_every=3)
