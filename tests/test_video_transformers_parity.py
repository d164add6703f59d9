"""Video tracking parity: sam2_hf's Sam2VideoPredictor vs transformers' own `Sam2VideoModel`, same weights.

Our model is saved with `save_pretrained` and loaded by `transformers.Sam2VideoModel.from_pretrained`
(the config and weight names are transformers' own, so it loads with no missing or unexpected key). Both
then run one session on a synthetic clip:

1. frame 0: object 1 one positive click, object 2 a positive and a negative click, object 3 a box;
2. forward propagation through the whole clip;
3. frame 6: a new object 4 (a click on the grey occluder) added after tracking started;
4. reverse propagation from frame 6 back to frame 0 (transformers supports `reverse=True`).

Every mask either side returns is compared as logits at video resolution (transformers' low-res
`pred_masks` through `Sam2VideoProcessor.post_process_masks(binarize=False)`, which is the same bilinear
resize our predictor applies); max abs difference <= TOLERANCE, printed per object.

The weights are the content-bearing ones (tests/content_weights.py: objects distinct, memory deciding the
masks) and both sides run in float64 (`reference.double_precision`; transformers' model is built inside it so
its RoPE frequencies are float64 too), for the reason test_video_parity gives: on these weights the model
amplifies a float32 rounding difference about 3x per tracked frame. Memories are stored in bfloat16 on both
sides, as each does by default: values that agree to 1e-14 round to the same bfloat16.

How transformers is driven so that it computes the same thing (all are differences of its API or
algorithm, not of the numbers):
- Frames. Its video processor resizes bilinearly (ours and Meta's JPEG loader: PIL bicubic), so the
  session is built directly from our preprocessed frames (`VideoSession.pixel_values`), stacked into
  a (T, 3, S, S) tensor. `Sam2VideoInferenceSession`'s default `dtype="float32"` is a string that
  `Tensor.to` rejects when a video is given, so `dtype=torch.float32` is passed.
- Coordinates. The processor scales points and boxes to `target_size`, which defaults to its image
  processor's 1024; it is built with `target_size=image_size`.
- Prompts. `add_inputs_to_inference_session` *replaces* the session's list of objects with new inputs,
  and `propagate_in_video_iterator` cannot find a start frame before a frame was run; so, as in
  transformers' docs, every prompt is followed by `model(inference_session, frame_idx=...)`. That call
  runs every object on the frame: objects without a prompt there are tracked on it (and their result
  stored), which ours and Meta's `add_new_points_or_box` do not do. Their stored result is the same as
  the one tracking produces there (same memories), so nothing downstream changes.
- Memory of prompted frames: transformers encodes it in that `model(...)` call, Meta and ours on the
  next propagation (preflight); same inputs, same numbers.
- Hole filling: transformers has none, so ours runs with `fill_hole_area=0` (Meta's CPU reference
  skips it too, see test_video_parity).
- Not compared, because transformers does something else by design:
  * correction clicks on an already tracked frame: Meta and ours feed the frame's previous mask logits
    to the decoder as a dense prompt (`prev_sam_mask_logits`) and re-use the direction the frame was
    tracked in; transformers' `forward` passes no previous mask and uses the call's `reverse` flag;
  * streaming (`model(frame=...)`): transformers then does not cap object-pointer look-back by the
    number of frames (Meta has no streaming mode; ours is tested in the tracker tests);
  * mask prompts are not exercised here (they are compared with Meta's in test_video_parity).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest
import torch

from content_weights import distinct_where_both_found
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

from reference import double_precision, max_abs_diff

transformers = pytest.importorskip("transformers")
pytest.importorskip("torchvision")  # transformers' Sam2 processors need it

IMAGE_SIZE = 256
NUM_FRAMES = 10
HEIGHT, WIDTH = 96, 128
TOLERANCE = 1e-5


class TransformersDriver:
    """Meta's predictor calls (the subset used here) on transformers' Sam2VideoModel + Sam2VideoProcessor."""

    def __init__(self, model, video: torch.Tensor, height: int, width: int, image_size: int):
        from transformers import (
            Sam2ImageProcessor,
            Sam2VideoInferenceSession,
            Sam2VideoProcessor,
            Sam2VideoVideoProcessor,
        )

        self.model = model
        self.size = [[height, width]]
        self.processor = Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor(), target_size=image_size)
        self.session = Sam2VideoInferenceSession(
            video=video, video_height=height, video_width=width, dtype=torch.float32
        )

    def _video_res(self, output):
        masks = self.processor.post_process_masks([output.pred_masks], self.size, binarize=False)[0]
        return output.frame_idx, list(output.object_ids), masks

    def add_new_points_or_box(self, frame_idx, obj_id, points=None, labels=None, box=None):
        kwargs = {}
        if points is not None:
            kwargs.update(input_points=[[points]], input_labels=[[labels]])
        if box is not None:
            kwargs.update(input_boxes=[[box]])
        self.processor.add_inputs_to_inference_session(self.session, frame_idx, obj_id, **kwargs)
        return self._video_res(self.model(inference_session=self.session, frame_idx=frame_idx))

    def propagate_in_video(self, start_frame_idx=None, reverse=False):
        for output in self.model.propagate_in_video_iterator(
            self.session, start_frame_idx=start_frame_idx, reverse=reverse
        ):
            yield self._video_res(output)


class OursDriver:
    def __init__(self, predictor, state):
        self.predictor, self.state = predictor, state

    def add_new_points_or_box(self, frame_idx, obj_id, points=None, labels=None, box=None):
        return self.predictor.add_new_points_or_box(
            self.state, frame_idx, obj_id, points=points, labels=labels, box=box
        )

    def propagate_in_video(self, start_frame_idx=None, reverse=False):
        yield from self.predictor.propagate_in_video(self.state, start_frame_idx=start_frame_idx, reverse=reverse)


def session_script(driver, log):
    """The same calls for both sides; every returned mask set is logged as (label, frame, obj_ids, logits)."""

    def add(label, result):
        frame_idx, obj_ids, masks = result
        log.append((label, int(frame_idx), list(obj_ids), masks.float().cpu().clone()))

    add("click obj1 f0", driver.add_new_points_or_box(0, 1, points=[[20, 29]], labels=[1]))
    add("clicks obj2 f0", driver.add_new_points_or_box(0, 2, points=[[25, 67], [60, 20]], labels=[1, 0]))
    add("box obj3 f0", driver.add_new_points_or_box(0, 3, box=[88, 40, 104, 56]))
    for result in driver.propagate_in_video():
        add("forward", result)
    add("click new obj4 f6", driver.add_new_points_or_box(6, 4, points=[[66, 10]], labels=[1]))
    for result in driver.propagate_in_video(start_frame_idx=6, reverse=True):
        add("reverse", result)


@pytest.mark.parametrize("version", ["2.1", "2"])
def test_video_predictor_matches_transformers(tmp_path, version, video_reference):
    frames = synthetic_clip(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH)
    reference = video_reference(version, content=True)
    ours = reference.load(Sam2VideoPredictor, fill_hole_area=0)
    ours.model.to(torch.float64).save_pretrained(tmp_path / "hf")
    with double_precision():  # built inside, so its RoPE frequencies are computed in float64 too
        theirs, info = transformers.Sam2VideoModel.from_pretrained(
            tmp_path / "hf", output_loading_info=True, dtype=torch.float64
        )
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert next(theirs.parameters()).dtype == torch.float64
    theirs.eval()

    with torch.inference_mode(), double_precision():
        state = ours.init_state(frames)
        video = torch.cat([state.pixel_values(i) for i in range(NUM_FRAMES)])
        our_log, their_log = [], []
        session_script(OursDriver(ours, state), our_log)
        session_script(TransformersDriver(theirs, video, HEIGHT, WIDTH, IMAGE_SIZE), their_log)

    assert [e[:3] for e in our_log] == [e[:3] for e in their_log]
    per_object = defaultdict(float)
    for (_, _, obj_ids, a), (_, _, _, b) in zip(our_log, their_log):
        for i, obj_id in enumerate(obj_ids):
            per_object[obj_id] = max(per_object[obj_id], max_abs_diff(a[i], b[i]))
    worst = max(per_object.values())
    print(
        f"\nSAM {version} vs transformers: {len(our_log)} mask sets compared, max abs diff per object "
        + ", ".join(f"obj{k}: {v:.2e}" for k, v in sorted(per_object.items()))
    )
    os.makedirs("test-artifacts", exist_ok=True)
    with open(f"test-artifacts/video_transformers_parity_sam{version}.json", "w") as f:
        json.dump({"compared": len(our_log), "max_abs_diff": worst, "per_object": per_object}, f)
    errors = [(e[0], e[1], max_abs_diff(e[3], t[3])) for e, t in zip(our_log, their_log)]
    assert worst <= TOLERANCE, [e for e in errors if e[2] > TOLERANCE][:5]

    # The comparison is not vacuous: objects 1 (red disc) and 2 (blue square) are both found on most tracked
    # frames of both passes, with distinct masks wherever both are; the masks move between frames.
    forward = [e[3] for e in our_log if e[0] == "forward"]
    reverse = [e[3] for e in our_log if e[0] == "reverse"]
    assert len(forward) == NUM_FRAMES and len(reverse) == 7 and reverse[0].shape[0] == 4
    tracked = [m[:2, 0] > 0 for m in forward[1:] + reverse[1:]]
    both = distinct_where_both_found(tracked)
    print(f"objects 1 and 2 both found on {both} of {len(tracked)} tracked frames")
    assert both >= 0.75 * len(tracked)
    assert not torch.equal(forward[0] > 0, forward[-1] > 0)
