"""Video tracking behaviour: memory policies, batched objects, hole filling, streaming, bad input."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2_hf import Prompt, Sam2Tracker, Sam2VideoConfig, TrackingError
from sam2_hf.media.frames import FrameSource, VideoDecodeError, open_frames
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor
from sam2_hf.processing.prompts import OutOfImageWarning

from reference import max_abs_diff

IMAGE_SIZE = 128
CLIP = synthetic_clip(num_frames=10, height=96, width=128)
CLICKS = {1: [[20, 29]], 2: [[25, 67]], 3: [[96, 48]]}


@pytest.fixture(scope="module")
def checkpoint(reference_models):
    return reference_models("tiny", "2.1", IMAGE_SIZE)


def make_predictor(checkpoint, **options):
    options.setdefault("fill_hole_area", 0)
    return checkpoint.load(Sam2VideoPredictor, **options)


def run(predictor, objects=(1, 2, 3), passes=((0, False),), state_options=None):
    """Click objects on frame 0, then propagate; -> ({(pass, frame): logits}, state)."""
    state = predictor.init_state(CLIP, **(state_options or {}))
    for obj in objects:
        predictor.add_new_points_or_box(state, 0, obj, points=CLICKS[obj], labels=[1])
    results = {}
    for i, (start, reverse) in enumerate(passes):
        for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
            results[(i, frame_idx)] = masks
    return results, state


def test_disk_policy_spills_and_reads_back_exactly(checkpoint):
    passes = ((0, False), (9, True))  # forward, then backward over what the forward pass stored
    reference, _ = run(make_predictor(checkpoint, memory_policy="ram"), passes=passes)
    predictor = make_predictor(checkpoint, memory_policy="disk")
    state = predictor.init_state(CLIP)
    for obj in (1, 2, 3):
        predictor.add_new_points_or_box(state, 0, obj, points=CLICKS[obj], labels=[1])
        state.objects[obj].memory.non_cond.ram_capacity = 3  # a tiny RAM window, so spilling really happens
    for i, (start, reverse) in enumerate(passes):
        for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
            assert all(len(o.memory.non_cond._ram) <= 3 for o in state.objects.values())
            assert max_abs_diff(reference[(i, frame_idx)], masks) == 0
    store = state.objects[1].memory.non_cond
    assert store.keys() == list(range(1, 10)) and len(store._spilled) >= 6  # nothing lost, most of it on disk


def test_window_policy_forgets_what_tracking_cannot_read():
    clip = synthetic_clip(num_frames=20, height=96, width=128)
    predictor = Sam2VideoPredictor(build_our_model(), fill_hole_area=0)
    results = {}
    for policy in ("ram", "window"):
        state = predictor.init_state(clip, memory_policy=policy)
        predictor.add_new_points_or_box(state, 0, 1, points=CLICKS[1], labels=[1])
        state.objects[1].memory.non_cond.ram_capacity = 16  # what forward tracking reads: 15 pointers, 6 memories
        results[policy] = [m for _, _, m in predictor.propagate_in_video(state)]
        stored = len(state.objects[1].memory.non_cond)
        assert stored == (19 if policy == "ram" else 16)
    assert all(max_abs_diff(a, b) == 0 for a, b in zip(results["ram"], results["window"]))


def build_our_model():
    from sam2_hf import Sam2VideoModel

    torch.manual_seed(0)
    return Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=IMAGE_SIZE)).eval()


def test_objects_are_tracked_as_one_batch_with_per_object_results(checkpoint):
    predictor = make_predictor(checkpoint)
    calls = []
    hook = predictor.model.memory_attention.register_forward_hook(lambda m, args, out: calls.append(out.shape[0]))
    try:
        together, _ = run(predictor)
    finally:
        hook.remove()
    assert calls and all(batch == 3 for batch in calls), calls  # one call per frame, all objects at once
    for i, obj in enumerate((1, 2, 3)):
        alone, _ = run(make_predictor(checkpoint), objects=(obj,))
        worst = max(max_abs_diff(together[k][i], alone[k][0]) for k in alone)
        assert worst <= 1e-4, (obj, worst)
    masks = together[(0, 5)]
    assert (masks > 0).any() and not torch.equal(masks[0], masks[1])


def test_small_holes_are_filled_on_cpu(checkpoint):
    """A mask prompt with a small hole: with fill_hole_area=8 exactly the small background components of the
    low-resolution logits become 0.1 (the reference's rule, whose kernel only runs on CUDA)."""
    mask = np.zeros((96, 128), dtype=bool)
    mask[20:70, 30:100] = True
    mask[40:48, 60:68] = False  # an 8x8-pixel hole, about 2x3 low-resolution pixels
    outputs = {}
    for area in (0, 8):
        predictor = make_predictor(checkpoint, fill_hole_area=area)
        state = predictor.init_state(CLIP)
        predictor.add_new_mask(state, 0, 1, mask)
        outputs[area] = state.objects[1].pending[True][0].mask_logits[0, 0]
    plain, filled = outputs[0], outputs[8]
    labels, _ = ndimage.label((plain <= 0).numpy(), structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())
    expected = torch.from_numpy((labels > 0) & (areas[labels] <= 8))
    assert expected.any(), "the test mask should leave a small hole in the low-resolution logits"
    assert torch.equal(filled != plain, expected)
    assert torch.all(filled[expected] == 0.1)


def test_streaming_equals_offline_forward_tracking(checkpoint):
    """A stream of unknown length normalises pointer offsets by the full 16-frame window (as transformers does);
    offline tracking does the same on a video of at least 16 frames, so the two agree there."""
    clip = synthetic_clip(num_frames=16, height=96, width=128)
    predictor = make_predictor(checkpoint)
    state = predictor.init_state(clip)
    for obj in (1, 2):
        predictor.add_new_points_or_box(state, 0, obj, points=CLICKS[obj], labels=[1])
    offline = [m for _, _, m in predictor.propagate_in_video(state, max_frame_num_to_track=5)]

    stream = Sam2Tracker(make_predictor(checkpoint)).stream()
    with pytest.raises(RuntimeError, match="Push a frame before adding prompts"):
        stream.add_prompt(1, points=CLICKS[1], labels=[1])
    for t, frame in enumerate(clip[:6]):
        masks = stream.push(frame)
        if t == 0:
            assert masks == {}
            stream.add_prompt(1, points=CLICKS[1], labels=[1])
            masks = stream.add_prompt(2, points=CLICKS[2], labels=[1])
        assert np.array_equal(np.stack([masks[1], masks[2]]), (offline[t][:, 0] > 0).numpy()), t
    assert stream.state.objects[1].memory.non_cond.policy == "window"


def test_tracker_both_directions_and_masklets(checkpoint):
    tracker = Sam2Tracker(make_predictor(checkpoint))
    masklets = tracker.track(CLIP, [Prompt(4, 1, points=[[48, 29]], labels=[1])], direction="both", progress=False)
    assert masklets.frames() == list(range(10)) and masklets.obj_ids == [1]
    assert masklets.mask(4, 1).shape == (96, 128) and masklets.mask(4, 1).dtype == bool
    forward = list(tracker.iter_track(CLIP, [Prompt(4, 1, points=[[48, 29]], labels=[1])], "forward", progress=False))
    assert [t for t, _ in forward] == list(range(4, 10))


def test_bad_input_is_named(checkpoint, tmp_path):
    predictor = make_predictor(checkpoint)
    state = predictor.init_state(CLIP)
    with pytest.raises(IndexError, match="Frame index 10 is out of range"):
        predictor.add_new_points_or_box(state, 10, 1, points=[[5, 5]], labels=[1])
    with pytest.raises(ValueError, match="labels must be 1"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[5, 5]], labels=[7])
    with pytest.raises(ValueError, match="points and labels must be given together"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[5, 5]])
    with pytest.raises(ValueError, match="x1 >= x0"):
        predictor.add_new_points_or_box(state, 0, 1, box=[50, 5, 10, 40])
    with pytest.raises(RuntimeError, match="No input points or masks"):
        next(predictor.propagate_in_video(state))
    with pytest.warns(OutOfImageWarning, match="outside the 128x96 image"):  # used as given, as Meta does
        predictor.add_new_points_or_box(state, 0, 2, points=[[500, 5]], labels=[1])
    predictor.add_new_points_or_box(state, 0, 1, points=[[5, 5]], labels=[1])
    with pytest.raises(KeyError, match="Unknown object id 7"):
        predictor.clear_all_prompts_in_frame(state, 0, 7)
    with pytest.raises(ValueError, match="direction must be one of"):
        next(Sam2Tracker(predictor).iter_track(CLIP, [Prompt(0, 1, points=[[5, 5]], labels=[1])], "sideways"))
    with pytest.raises(ValueError, match="Sam2Tracker: prompts is empty"):
        Sam2Tracker(predictor).track(CLIP, [])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError):
        predictor.init_state(str(empty))


def test_decode_failure_midway_keeps_results(checkpoint, tmp_path):
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.codec_context.gop_size = 1
        for frame in CLIP:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tracker = Sam2Tracker(make_predictor(checkpoint))
    full = tracker.track(str(path), [Prompt(0, 1, points=CLICKS[1], labels=[1])], "forward", progress=False)
    assert full.frames() == list(range(10))

    class FailingFrames(FrameSource):  # the same video, failing at frame 6 as a corrupt file would
        def __init__(self, inner):
            self.inner = inner
            self.num_frames, self.height, self.width, self.fps = inner.num_frames, inner.height, inner.width, inner.fps

        def frame(self, index):
            if index == 6:
                raise VideoDecodeError(path, "corrupt packet", frame_index=6)
            return self.inner.frame(index)

    source = FailingFrames(open_frames(str(path)))
    with pytest.raises(TrackingError) as info:
        tracker.track(source, [Prompt(0, 1, points=CLICKS[1], labels=[1])], "forward", progress=False)
    assert info.value.frame_index == 6 and info.value.masklets.frames() == list(range(6))
    assert np.array_equal(info.value.masklets.mask(3, 1), full.mask(3, 1))
