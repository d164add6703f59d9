"""The compute seam (issue 20, requirement 1): every API face reaches the model's compute only through the
backend's four parts (backends/protocol.py), and a backend passed in is the one that runs.

`seam_guard` records every call of the torch backend's parts and makes every compute module of the models a test
builds raise when it runs outside a part (a forward pre-hook on each of the model's submodules). The
tracking scenarios below — Meta's video predictor (clicks, box, mask, correction, reverse), the transformers-style
session, `Sam2Tracker` (segment-everything start, streaming), the image predictor and automatic mask generator,
a training forward — then run unchanged: any compute reached another way fails the test.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import numpy as np
import pytest
import torch

import sam2_hf.backends.torch as torch_backend
from sam2_hf import (
    Sam2AutomaticMaskGenerator,
    Sam2ImagePredictor,
    Sam2ImageProcessor,
    Sam2Model,
    Sam2Tracker,
    Sam2VideoModel,
    Sam2VideoPredictor,
    Sam2VideoProcessor,
)
from sam2_hf.backends.torch import TorchBackend
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.training import PromptSimulation, Sam2VideoModelForTraining
from test_training_parity import IMAGE_SIZE as TRAINING_IMAGE_SIZE
from test_training_parity import clip_batch

PARTS = {
    "TorchImageEncoder": ("encode_frame", "image_only_embedding"),
    "TorchMaskDecoder": ("decode", "project_image", "downsample_mask", "project_object_pointer"),
    "TorchMemoryAttention": ("condition_on_memory",),
    "TorchMemoryEncoder": ("encode_memory",),
}
VIDEO_CALLS = {"encode_frame", "image_only_embedding", "decode", "condition_on_memory", "encode_memory"}
CLIP = synthetic_clip(num_frames=6, height=96, width=128)


class SeamGuard:
    """Counts the backend parts' calls (`calls`: Counter of method names) and raises when a guarded model
    computes outside them."""

    def __init__(self):
        self.calls: Counter = Counter()
        self.depth = 0  # > 0 while a backend part runs

    @contextlib.contextmanager
    def inside(self, name: str):
        self.calls[name] += 1
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def guard(self, model: torch.nn.Module) -> torch.nn.Module:
        """Every submodule of `model` (down to each convolution and linear layer) raises when it runs outside a
        backend part."""

        def check(module, _inputs):
            if not self.depth:
                raise AssertionError(f"{type(module).__name__} ran outside the backend's parts (the seam was bypassed)")

        for module in model.modules():
            if module is not model:
                module.register_forward_pre_hook(check)
        return model


@pytest.fixture
def seam_guard(monkeypatch):
    guard = SeamGuard()
    for class_name, methods in PARTS.items():
        cls = getattr(torch_backend, class_name)
        for method in methods:
            original = getattr(cls, method)

            def recorded(self, *args, _original=original, _name=method, **kwargs):
                with guard.inside(_name):
                    return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, recorded)
    return guard


@pytest.fixture(scope="module")
def video_path(video_reference):
    return video_reference().path  # tiny SAM 2.1, 256 px, seeded random weights (a Meta .pt)


def guarded_video_model(guard, video_path, cls=Sam2VideoModel):
    return guard.guard(cls.from_pretrained(video_path, image_size=256))


def test_the_guard_catches_compute_outside_the_parts(seam_guard, video_path):
    model = guarded_video_model(seam_guard, video_path)
    with pytest.raises(AssertionError, match="outside the backend"), torch.no_grad():
        model.encode_frame(torch.zeros(1, 3, 256, 256))
    assert TorchBackend(model).image_encoder.encode_frame(torch.zeros(1, 3, 256, 256)) is not None


def test_meta_video_predictor_goes_through_the_backend(seam_guard, video_path):
    predictor = Sam2VideoPredictor(guarded_video_model(seam_guard, video_path))
    state = predictor.init_state(CLIP)
    predictor.add_new_points_or_box(state, 0, 1, points=[[20, 29]], labels=[1])
    predictor.add_new_points_or_box(state, 0, 2, box=[5, 50, 50, 90])
    predictor.add_new_mask(state, 2, 3, np.pad(np.ones((20, 20), bool), ((40, 36), (80, 28))))
    list(predictor.propagate_in_video(state))
    predictor.add_new_points_or_box(state, 4, 1, points=[[30, 30]], labels=[0], clear_old_points=False)
    list(predictor.propagate_in_video(state, start_frame_idx=4, reverse=True))
    assert VIDEO_CALLS | {"downsample_mask", "project_object_pointer"} <= set(seam_guard.calls), seam_guard.calls


def test_transformers_session_goes_through_the_backend(seam_guard, video_path):
    model = guarded_video_model(seam_guard, video_path)
    processor = Sam2VideoProcessor(Sam2ImageProcessor.for_image_size(256))
    session = processor.init_video_session(video=CLIP)
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[1], input_points=[[[[20, 29]]]],
                                              input_labels=[[[1]]])  # fmt: skip
    model(inference_session=session, frame_idx=0)
    mask = np.zeros((96, 128), bool)
    mask[40:60, 80:100] = True
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[2], input_masks=[mask])
    model(inference_session=session, frame_idx=0)
    outputs = list(model.propagate_in_video_iterator(session))
    assert len(outputs) == len(CLIP)
    assert VIDEO_CALLS | {"downsample_mask"} <= set(seam_guard.calls), seam_guard.calls


def test_tracker_everything_and_stream_go_through_the_backend(seam_guard, video_path):
    tracker = Sam2Tracker(Sam2VideoPredictor(guarded_video_model(seam_guard, video_path), fill_hole_area=0))
    tracker.track(CLIP[:3], generator=Sam2AutomaticMaskGenerator(tracker.predictor.model, points_per_side=4,
                                                                 pred_iou_thresh=0, stability_score_thresh=0,
                                                                 backend=tracker.predictor.backend))  # fmt: skip
    stream = tracker.stream()
    stream.push(CLIP[0])
    stream.add_prompt(1, points=[[20, 29]], labels=[1])
    for frame in CLIP[1:3]:
        stream.push(frame)
    assert set(seam_guard.calls) >= VIDEO_CALLS, seam_guard.calls


def test_image_predictor_and_mask_generator_go_through_the_backend(seam_guard, video_path):
    model = seam_guard.guard(Sam2Model.from_pretrained(video_path, image_size=256))
    predictor = Sam2ImagePredictor(model)
    predictor.set_image(CLIP[0])
    predictor.predict(point_coords=np.array([[20, 29]]), point_labels=np.array([1]))
    Sam2AutomaticMaskGenerator(model, points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0).generate(CLIP[0])
    expected = {"encode_frame", "image_only_embedding", "project_image", "decode"}
    assert set(seam_guard.calls) == expected, seam_guard.calls


def test_training_forward_goes_through_the_backend(seam_guard, reference_models):
    path = reference_models("tiny", "2.1", TRAINING_IMAGE_SIZE).path
    model = Sam2VideoModelForTraining.from_pretrained(path, image_size=TRAINING_IMAGE_SIZE)
    model.set_prompt_simulation(PromptSimulation(prob_to_use_pt_input_for_train=1.0, num_frames_to_correct_for_train=2))
    seam_guard.guard(model).train()
    outputs = model(*clip_batch(3, 1))
    torch.stack([o["pred_masks_high_res"].sum() for o in outputs]).sum().backward()  # gradients flow through it
    assert set(seam_guard.calls) >= VIDEO_CALLS, seam_guard.calls


class RecordingBackend:
    """A backend that is not the torch one: it wraps one and logs (part, method) of every call."""

    def __init__(self, inner):
        self.inner, self.log = inner, []
        for part in ("image_encoder", "mask_decoder", "memory_attention", "memory_encoder"):
            setattr(self, part, self._recorded(part, getattr(inner, part)))

    def _recorded(self, part, inner_part):
        backend = self

        class Part:
            def __getattr__(self, name):
                value = getattr(inner_part, name)
                if not callable(value):
                    return value

                def call(*args, **kwargs):
                    backend.log.append((part, name))
                    return value(*args, **kwargs)

                return call

        return Part()

    config = property(lambda self: self.inner.config)
    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)


def test_a_backend_passed_in_is_the_one_that_runs(video_path):
    """Sam2VideoPredictor(model, backend=...) tracks with that backend: same masks as the default, every part
    called through it (how an exported runtime plugs in)."""
    model = Sam2VideoModel.from_pretrained(video_path, image_size=256)
    recording = RecordingBackend(TorchBackend(model))
    results = []
    for predictor in (Sam2VideoPredictor(model), Sam2VideoPredictor(model, backend=recording)):
        state = predictor.init_state(CLIP)
        predictor.add_new_points_or_box(state, 0, 1, points=[[20, 29]], labels=[1])
        results.append(torch.cat([masks for _, _, masks in predictor.propagate_in_video(state)]))
    assert torch.equal(*results)
    assert {method for _, method in recording.log} >= VIDEO_CALLS
    assert {part for part, _ in recording.log} == {
        "image_encoder",
        "mask_decoder",
        "memory_attention",
        "memory_encoder",
    }
