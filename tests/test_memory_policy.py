"""The memory-policy seam (issue 20, requirement 2): memory selection is pluggable in every video API, separate
from storage, and a policy sees the per-frame signals it needs.

The test double `ConditioningOnlySelection` lets a frame read only its object's conditioning (prompted) frames:
spatial memories at temporal index 0 and their object pointers, nothing of the tracked frames. On the
content-bearing test weights (tests/content_weights.py: memory matters, objects distinct), every video API given
it — Meta's `Sam2VideoPredictor`, `Sam2Tracker.track` and `.stream()`, the transformers-style session, VOS
evaluation's `segment_video` — must give the default run's masks on the prompted frame, other masks on tracked
frames, and have read nothing but conditioning frames; the default stays `ReferenceSelection`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from content_weights import clip_with_masks, deepest_pixels
from sam2_hf import Prompt, Sam2ImageProcessor, Sam2Tracker, Sam2VideoPredictor, Sam2VideoProcessor
from sam2_hf.evaluation.vos import segment_video
from sam2_hf.models.outputs import MemorySelection
from sam2_hf.tracking.selection import FrameSignals, ReferenceSelection
from sam2_hf.tracking.storage import RAM_WINDOW
from test_backend_seam import RecordingBackend

S = 256  # the content weights' input size
MAX_POINTERS = 16
MIN_CHANGE = 0.01  # measured: 95 % of the predictor's logits; a few % of the objects' pixels (tracker, masks)


class ConditioningOnlySelection:
    """Reads only conditioning frames: each at temporal index 0 with its object pointer (signed offset as the
    reference's); records what it returned and every signal it observed."""

    def __init__(self):
        self.selections: list[MemorySelection] = []
        self.signals: list[FrameSignals] = []

    def select(self, memory, frame_idx, reverse, num_frames) -> MemorySelection:
        sign = -1 if reverse else 1
        spatial = [(0, out) for out in memory.cond.values()]
        pointers = [((frame_idx - t) * sign, out) for t, out in memory.cond.items()]
        self.selections.append(MemorySelection(spatial, pointers, MAX_POINTERS))
        return self.selections[-1]

    def frames_read_back(self) -> int:
        return 0

    def observe(self, signals: FrameSignals) -> None:
        self.signals.append(signals)


class Policies:
    """The factory the video APIs take (`memory_selection=`), keeping every policy it made."""

    def __init__(self):
        self.made: list[ConditioningOnlySelection] = []

    def __call__(self, config, stride) -> ConditioningOnlySelection:
        self.made.append(ConditioningOnlySelection())
        return self.made[-1]


@pytest.fixture(scope="module")
def content(video_reference):
    return video_reference(content=True)


@pytest.fixture(scope="module")
def clip():
    frames, masks = clip_with_masks()
    return frames[:6], masks[:6]  # (T, H, W, 3), (T, 3, H, W): objects 1-3 on frame 0


def clicks(masks) -> dict:
    """{obj_id: [[x, y]]}: one click deep inside each object on frame 0."""
    return {k + 1: [list(point)] for k, point in enumerate(deepest_pixels(masks[0]))}


def track_with(predictor, frames, masks) -> torch.Tensor:
    """Objects 1-3 clicked on frame 0 and tracked forward: (T, 3, H, W) logits."""
    state = predictor.init_state(frames)
    for obj_id, points in clicks(masks).items():
        predictor.add_new_points_or_box(state, 0, obj_id, points=points, labels=[1])
    return torch.stack([m[:, 0] for _, _, m in predictor.propagate_in_video(state)])


def assert_policy_took_effect(default: np.ndarray, changed: np.ndarray, policies: Policies, what: str) -> None:
    """(T, ...) bool masks or float logits of both runs: frame 0 (prompted) equal, tracked frames different (more
    than MIN_CHANGE of the logits, or of the pixels either run's masks cover); the policy was asked for the tracked
    frames' memories and handed back conditioning frames only."""
    assert np.array_equal(default[0], changed[0]), f"{what}: the prompted frame changed"
    changed_values = default[1:] != changed[1:]
    if default.dtype == bool:  # masks: differing pixels among those either run marks as an object's
        differing = changed_values.sum() / max(1, (default[1:] | changed[1:]).sum())
    else:  # logits: differing values
        differing = changed_values.mean()
    print(f"\n{what}: {differing:.1%} of tracked frames' mask values differ from the reference selection's")
    assert differing > MIN_CHANGE, what
    selections = [s for policy in policies.made for s in policy.selections]
    assert selections, f"{what}: the policy was never asked"
    assert all(t == 0 for s in selections for t, _ in s.spatial), what


def test_default_is_the_reference_selection(content, clip):
    predictor = content.load(Sam2VideoPredictor)
    state = predictor.init_state(clip[0])
    assert isinstance(state.memory_selection, ReferenceSelection)
    assert state.memory_selection.frames_read_back() == max(5 * 1 + 1, 15)


def test_video_predictor_with_a_policy(content, clip):
    frames, masks = clip
    default = track_with(content.load(Sam2VideoPredictor), frames, masks)
    policies = Policies()
    model = content.load()
    recording = RecordingBackend(Sam2VideoPredictor(model).backend)
    changed = track_with(Sam2VideoPredictor(model, memory_selection=policies, backend=recording), frames, masks)
    assert_policy_took_effect(default.numpy(), changed.numpy(), policies, "Sam2VideoPredictor")
    assert ("memory_attention", "condition_on_memory") in recording.log  # the policy's choice reached attention


def test_policy_observes_every_stored_output(content, clip):
    frames, masks = clip
    policies = Policies()
    track_with(content.load(Sam2VideoPredictor, memory_selection=policies), frames, masks)
    (policy,) = policies.made
    stored = {(s.obj_id, s.frame_idx, s.conditioning) for s in policy.signals}
    assert stored == {(k, 0, True) for k in (1, 2, 3)} | {(k, t, False) for k in (1, 2, 3) for t in range(1, 6)}
    for signal in policy.signals:
        assert signal.iou_score.shape == (1, 1) and signal.mask_logits.shape == (1, 1, S // 4, S // 4)
        present = signal.object_score_logit > 0
        assert (signal.box is not None) == bool((signal.mask_logits > 0).any()), signal
        if present and signal.box is not None:
            x0, y0, x1, y1 = signal.box
            assert 0 <= x0 <= x1 < S // 4 and 0 <= y0 <= y1 < S // 4
    assert any(s.object_score_logit > 0 for s in policy.signals) and len({s.box for s in policy.signals}) > 3


def test_tracker_and_stream_with_a_policy(content, clip):
    frames, masks = clip
    prompts = [(obj_id, points) for obj_id, points in clicks(masks).items()]

    def track(**options):
        tracker = Sam2Tracker(content.load(Sam2VideoPredictor, **options))
        masklets = tracker.track(frames, [Prompt(0, k, points=p, labels=[1]) for k, p in prompts], direction="forward")
        stream = tracker.stream()
        streamed = [stream.push(frames[0])]
        for obj_id, points in prompts:
            streamed[0] = stream.add_prompt(obj_id, points=points, labels=[1])
        streamed += [stream.push(frame) for frame in frames[1:]]
        as_array = lambda per_frame: np.stack([np.stack([m[k] for k, _ in prompts]) for m in per_frame])
        return as_array([masklets.masks(t) for t in range(len(frames))]), as_array(streamed)

    default_track, default_stream = track()
    policies = Policies()
    changed_track, changed_stream = track(memory_selection=policies)
    assert len(policies.made) == 2  # one per session: the track call's and the stream's
    assert_policy_took_effect(default_track, changed_track, policies, "Sam2Tracker.track")
    assert_policy_took_effect(default_stream, changed_stream, policies, "Sam2Tracker.stream")


def test_transformers_session_with_a_policy(content, clip):
    frames, masks = clip
    model = content.load()
    processor = Sam2VideoProcessor(Sam2ImageProcessor.for_image_size(S))

    def track(**options) -> np.ndarray:
        session = processor.init_video_session(video=list(frames), **options)
        for obj_id, points in clicks(masks).items():
            processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=[obj_id], input_points=[[points]], input_labels=[[[1]]]
            )
            model(inference_session=session, frame_idx=0)
        return torch.stack([out.pred_masks[:, 0] for out in model.propagate_in_video_iterator(session)]).numpy()

    policies = Policies()
    default, changed = track(), track(memory_selection=policies)
    assert_policy_took_effect(default, changed, policies, "Sam2VideoInferenceSession")


def test_vos_evaluation_with_a_policy(content, clip):
    frames, masks = clip
    first = {k + 1: masks[0, k] for k in range(3)}
    default = segment_video(content.load(Sam2VideoPredictor), frames, {0: first})
    policies = Policies()
    changed = segment_video(content.load(Sam2VideoPredictor, memory_selection=policies), frames, {0: first})
    as_array = lambda m: np.stack([np.stack([m.mask(t, k) for k in (1, 2, 3)]) for t in range(len(frames))])
    assert_policy_took_effect(as_array(default), as_array(changed), policies, "evaluation.vos.segment_video")


def test_window_storage_checks_the_policys_reach(content, clip):
    """The "window" storage must keep what the policy reads: SAM 2's selection at stride 5 reads further back
    than the window (ValueError); a policy reading conditioning frames only fits any window."""
    frames, _ = clip
    with pytest.raises(ValueError, match="window"):
        content.load(Sam2VideoPredictor, memory_temporal_stride_for_eval=RAM_WINDOW).init_state(
            frames, memory_policy="window"
        )
    predictor = content.load(
        Sam2VideoPredictor, memory_temporal_stride_for_eval=RAM_WINDOW, memory_selection=Policies()
    )
    assert predictor.init_state(frames, memory_policy="window").memory_selection.frames_read_back() == 0
