"""The seeded-bug ledger: semantic bugs the fast parity tests must catch, each by >= 10x their tolerance.

Each `SeededBug` is put into sam2_hf alone (monkeypatched for one test, never written into src/) and the
comparison of the parity test that must kill it is run on the changed sam2_hf against Meta's reference:
the error has to reach `KILL_FACTOR` times that test's tolerance (imported from it). The printed margin is
error / tolerance. Meta's side of each comparison is computed once per pytest session and only ours reruns.

The video comparison is test_video_parity's on the content-bearing weights in float64, where tracking is real:
measured 2026-12-05, every bug is killed by 5,000x to 3,500,000x (test-artifacts/seeded_bugs.json), where the
float32 comparison on random weights killed the weakest by 11x. It (`test_video_parity.VideoParity.errors`)
ends the session at the first mask set past
KILL_FACTOR x tolerance, so a reported video error is that mask set's (a lower bound of the session's
largest). That each comparison passes on unchanged sam2_hf is what the killing tests themselves check.

A bug that no comparison kills at 10x is a missing check in the parity tests, not an entry to drop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import sam2_hf.models.components.memory_attention as memory_attention
import sam2_hf.processing.prompts as prompts
from sam2_hf import Sam2Model, Sam2VideoModel
from sam2_hf.models.components.prompt_encoder import PromptEncoder
from sam2_hf.models.outputs import MemorySelection
from sam2_hf.tracking import heads
from sam2_hf.tracking.selection import ReferenceSelection
from sam2_hf.tracking.state import VideoSession
from sam2_hf.tracking.steps import TrackingSteps
from test_model_parity import REDUCED_SIZE, Setup, heads_errors, object_absent_heads
from test_model_parity import TOL as MODEL_TOLERANCE
from test_video_parity import CONTENT_REVERSE_FRAMES, CONTENT_TOLERANCE, video_parity

from reference import merge_artifact

pytest.importorskip("sam2", reason="Meta's reference implementation (pip install sam2==1.1.0) is needed")

KILL_FACTOR = 10
VIDEO_PARITY = "tests/test_video_parity.py::test_video_predictor_matches_reference[2.1]"
OBJECT_ABSENT_PARITY = "tests/test_model_parity.py::test_forward_sam_heads_object_absent[tiny-2.1]"
ARTIFACT = Path(__file__).resolve().parents[1] / "test-artifacts" / "seeded_bugs.json"


def wrap(monkeypatch, owner, name: str, wrapper: Callable) -> None:
    """Replace `owner.name` (a method, or a function of a module) by `wrapper(original, *args, **kwargs)`."""
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: wrapper(original, *args, **kwargs))


# ------------------------------------------------------------------------------------ the bugs
# Each patch(monkeypatch, model) changes sam2_hf for one test: classes and modules through `monkeypatch`,
# or `model`, the freshly loaded `Sam2VideoModel` the comparison runs.
def reversed_memory_temporal_encoding(monkeypatch, model):
    def spatial_memory(original, self, features, position, temporal_index):
        return original(self, features, position, self.config.num_maskmem - 1 - temporal_index)

    wrap(monkeypatch, Sam2VideoModel, "spatial_memory", spatial_memory)


def zero_pointer_temporal_encoding(monkeypatch, model):
    def object_pointer_memory(original, *args):
        tokens, position = original(*args)
        return tokens, torch.zeros_like(position)

    wrap(monkeypatch, Sam2VideoModel, "object_pointer_memory", object_pointer_memory)


def edit_selection(monkeypatch, edit: Callable[[MemorySelection], MemorySelection]):
    """Every memory selection (prompted and tracked frames) passed through `edit`."""
    wrap(monkeypatch, ReferenceSelection, "select", lambda original, *args, **kwargs: edit(original(*args, **kwargs)))


def drop_oldest_memory_frame(monkeypatch, model):
    oldest = 1  # temporal index of the frame num_maskmem - 1 back
    edit_selection(
        monkeypatch, lambda s: MemorySelection([m for m in s.spatial if m[0] != oldest], s.pointers, s.max_pointers)
    )


def two_object_pointers(monkeypatch, model):
    edit_selection(monkeypatch, lambda s: MemorySelection(s.spatial, s.pointers[:2], s.max_pointers))


def select_forward_memory_in_reverse(monkeypatch, model):
    def select(original, self, memory, frame_idx, reverse, *args, **kwargs):
        return original(self, memory, frame_idx, False, *args, **kwargs)

    wrap(monkeypatch, ReferenceSelection, "select", select)


def zero_no_memory_embedding(monkeypatch, model):
    monkeypatch.setattr(Sam2Model, "image_only_embedding", lambda self, image_embeddings: image_embeddings)


def scale_memory_mask_sigmoid(monkeypatch, model):
    monkeypatch.setattr(model.config, "sigmoid_scale_for_mem_enc", model.config.sigmoid_scale_for_mem_enc * 1.1)


def sigmoid_memory_of_clicked_frames(monkeypatch, model):
    def encode_memory(original, self, features, high_res_masks, object_score_logits, binarize=False):
        return original(self, features, high_res_masks, object_score_logits, False)

    wrap(monkeypatch, Sam2VideoModel, "encode_memory", encode_memory)


def occlusion_embedding_on_every_memory(monkeypatch, model):
    def encode_memory(original, self, features, high_res_masks, object_score_logits, *args, **kwargs):
        absent = torch.full_like(object_score_logits, -1.0)
        return original(self, features, high_res_masks, absent, *args, **kwargs)

    wrap(monkeypatch, Sam2VideoModel, "encode_memory", encode_memory)


def no_pixel_centre(monkeypatch, model):
    wrap(
        monkeypatch,
        PromptEncoder,
        "embed_points",
        lambda original, self, points, *a, **k: original(self, points - 0.5, *a, **k),
    )


def lowest_iou_mask(monkeypatch, model):
    def decode(original, *args, **kwargs):
        out = original(*args, **kwargs)
        return dataclasses.replace(out, iou_scores=-out.iou_scores)  # the best-IoU choice becomes the worst

    wrap(monkeypatch, Sam2Model, "decode", decode)


def no_dynamic_multimask(monkeypatch, model):
    monkeypatch.setattr(model.mask_decoder, "dynamic_multimask_via_stability", False)


def ungated_object_pointer(monkeypatch, model):
    monkeypatch.setattr(heads, "gate_object_pointer", lambda pointer, present, no_object_pointer: pointer)


def correction_without_previous_mask(monkeypatch, model):
    wrap(
        monkeypatch,
        TrackingSteps,
        "infer_prompted",
        lambda original, *a, **k: original(*a, **{**k, "prev_logits": None}),
    )


def rope_axes_swapped(monkeypatch, model):
    def axial_rope_tables(original, dim, end_x, end_y, theta, device=None, dtype=torch.float32):
        cos, sin = original(dim, end_x, end_y, theta, device=device, dtype=dtype)
        x = dim // 4  # the x angles come first, then the y angles
        return torch.cat([cos[:, x:], cos[:, :x]], 1), torch.cat([sin[:, x:], sin[:, :x]], 1)

    wrap(monkeypatch, memory_attention, "axial_rope_tables", axial_rope_tables)


def rope_theta_tenth(monkeypatch, model):
    def axial_rope_tables(original, dim, end_x, end_y, theta, device=None, dtype=torch.float32):
        return original(dim, end_x, end_y, theta / 10, device=device, dtype=dtype)

    wrap(monkeypatch, memory_attention, "axial_rope_tables", axial_rope_tables)


def bilinear_frame_resize(monkeypatch, model):
    resize = Image.Image.resize

    def pixel_values(original, *args):
        with monkeypatch.context() as scoped:  # PIL's resize changed only while sam2_hf reads a frame
            scoped.setattr(Image.Image, "resize", lambda image, size: resize(image, size, Image.Resampling.BILINEAR))
            return original(*args)

    wrap(monkeypatch, VideoSession, "pixel_values", pixel_values)


def mask_upscale_align_corners(monkeypatch, model):
    def upscale_masks(masks, size):
        return F.interpolate(masks.float(), size=tuple(size), mode="bilinear", align_corners=True)

    monkeypatch.setattr(heads, "upscale_masks", upscale_masks)


def prompt_scale_axes_swapped(monkeypatch, model):
    def to_model_coords(original, coords, original_hw, *args, **kwargs):
        return original(coords, tuple(original_hw)[::-1], *args, **kwargs)

    wrap(monkeypatch, prompts, "to_model_coords", to_model_coords)


@dataclasses.dataclass(frozen=True)
class SeededBug:
    """name, what the bug does (one line), the patch putting it into sam2_hf, the node id of the test that kills it."""

    name: str
    description: str
    patch: Callable
    killed_by: str


LEDGER = [
    SeededBug(
        "memory_temporal_encoding_reversed",
        "spatial memories get the temporal position encoding of the opposite end (oldest <-> conditioning)",
        reversed_memory_temporal_encoding,
        VIDEO_PARITY,
    ),
    SeededBug(
        "pointer_temporal_projection_zeroed",
        "object pointers' temporal position encoding (SAM 2.1's projected 1-D sine) replaced by zeros",
        zero_pointer_temporal_encoding,
        VIDEO_PARITY,
    ),
    SeededBug(
        "one_memory_frame_fewer",
        "the memory num_maskmem - 1 frames back is never read (range(2, num_maskmem))",
        drop_oldest_memory_frame,
        VIDEO_PARITY,
    ),
    SeededBug(
        "two_object_pointers",
        "only the first 2 selected object pointers are attended (max 16)",
        two_object_pointers,
        VIDEO_PARITY,
    ),
    SeededBug(
        "reverse_tracking_reads_past_memory",
        "memory selection ignores the direction: reverse tracking reads the frames before, not after",
        select_forward_memory_in_reverse,
        VIDEO_PARITY,
    ),
    SeededBug(
        "no_memory_embedding_zeroed",
        "frames without memory (first clicks) do not get the learned no_memory_embedding",
        zero_no_memory_embedding,
        VIDEO_PARITY,
    ),
    SeededBug(
        "memory_mask_sigmoid_scale_x1.1",
        "the mask's sigmoid is scaled by 1.1 x sigmoid_scale_for_mem_enc before the memory encoder",
        scale_memory_mask_sigmoid,
        VIDEO_PARITY,
    ),
    SeededBug(
        "clicked_frame_memory_not_binarized",
        "clicked frames' memories encoded from the mask's sigmoid, not the thresholded mask",
        sigmoid_memory_of_clicked_frames,
        VIDEO_PARITY,
    ),
    SeededBug(
        "occlusion_embedding_on_every_memory",
        "the memory encoder takes every object as absent: SAM 2.1's occlusion embedding is added to all memories",
        occlusion_embedding_on_every_memory,
        VIDEO_PARITY,
    ),
    SeededBug(
        "prompt_point_no_pixel_centre",
        "clicks and box corners are encoded at the pixel's corner (no + 0.5)",
        no_pixel_centre,
        VIDEO_PARITY,
    ),
    SeededBug(
        "multimask_lowest_iou",
        "multimask output keeps the mask of lowest predicted IoU (argmin)",
        lowest_iou_mask,
        VIDEO_PARITY,
    ),
    SeededBug(
        "dynamic_multimask_off",
        "single-mask output always takes token 0 (dynamic multimask via stability off)",
        no_dynamic_multimask,
        VIDEO_PARITY,
    ),
    SeededBug(
        "object_pointer_not_gated",
        "absent objects keep their decoder pointer instead of no_object_pointer",
        ungated_object_pointer,
        OBJECT_ABSENT_PARITY,
    ),
    SeededBug(
        "correction_ignores_previous_mask",
        "a click on an already tracked frame does not feed that frame's mask logits back as mask input",
        correction_without_previous_mask,
        VIDEO_PARITY,
    ),
    SeededBug(
        "rope_x_y_swapped",
        "memory attention's axial RoPE rotates x channels by the row and y channels by the column",
        rope_axes_swapped,
        VIDEO_PARITY,
    ),
    SeededBug(
        "rope_theta_tenth",
        "memory attention's RoPE built with theta / 10 (1e3 instead of the config's 1e4)",
        rope_theta_tenth,
        VIDEO_PARITY,
    ),
    SeededBug(
        "frame_resize_bilinear",
        "video frames resized to the model's size with bilinear instead of PIL's bicubic default",
        bilinear_frame_resize,
        VIDEO_PARITY,
    ),
    SeededBug(
        "mask_upscale_align_corners",
        "low-resolution masks upscaled for the memory encoder with align_corners=True",
        mask_upscale_align_corners,
        VIDEO_PARITY,
    ),
    SeededBug(
        "prompt_scale_x_y_swapped",
        "clicks and boxes scaled to the model by (S/H, S/W) instead of (S/W, S/H) (the video is 128 x 96)",
        prompt_scale_axes_swapped,
        VIDEO_PARITY,
    ),
]


# ------------------------------------------------------------------------------------ comparisons
class Kill(NamedTuple):
    error: float  # the comparison's largest max-abs difference on the bugged sam2_hf
    where: str  # which compared value it is
    tolerance: float  # the killing test's tolerance


@pytest.fixture(scope="module")
def object_absent_setup(reference_models, tmp_path_factory):
    """test_model_parity's tiny 2.1 models (pt and Hub folder), its tolerance-checked configuration."""
    s = Setup(reference_models("tiny", "2.1", REDUCED_SIZE[("tiny", "2.1")]), tmp_path_factory.mktemp("absent"), False)
    yield s
    s.close()


def run_video_parity(request, patch) -> Kill:
    """test_video_parity's comparison (SAM 2.1, content-bearing weights, float64) on a fresh predictor changed by
    `patch(model)`."""
    reference = request.getfixturevalue("video_reference")("2.1", content=True)
    parity = video_parity(reference, request.getfixturevalue("tmp_path_factory"), torch.float64, CONTENT_REVERSE_FRAMES)
    return run_parity(parity, patch, CONTENT_TOLERANCE)


def run_parity(parity, patch, tolerance: float) -> Kill:
    """`parity`'s comparison on a fresh predictor changed by `patch(model)`, stopped past KILL_FACTOR x tolerance."""
    predictor = parity.predictor()
    patch(predictor.model)
    errors = parity.errors(predictor, stop_above=KILL_FACTOR * tolerance)
    worst = max(errors, key=lambda e: e.error)
    return Kill(worst.error, f"{worst.label!r} frame {worst.frame_idx}", tolerance)


def run_object_absent_parity(request, patch) -> Kill:
    """test_model_parity's object-absent heads comparison (tiny 2.1) with both our models changed by `patch`."""
    s = request.getfixturevalue("object_absent_setup")
    for model in s.video_models.values():
        patch(model)
    errors = {
        f"{case} {name}": err
        for case, heads in object_absent_heads(s).items()
        for name, err in heads_errors(*heads).items()
    }
    where = max(errors, key=errors.get)
    return Kill(errors[where], where, MODEL_TOLERANCE)


COMPARISONS = {
    VIDEO_PARITY: run_video_parity,
    OBJECT_ABSENT_PARITY: run_object_absent_parity,
}


def record(bug: SeededBug, kill: Kill) -> None:
    entry = {"killed_by": bug.killed_by, **kill._asdict(), "margin": kill.error / kill.tolerance}
    merge_artifact(ARTIFACT, {bug.name: entry})


def test_ledger_is_large_enough():
    assert len(LEDGER) >= 12 and len({bug.name for bug in LEDGER}) == len(LEDGER)
    assert {bug.killed_by for bug in LEDGER} <= set(COMPARISONS)


@pytest.mark.parametrize("bug", LEDGER, ids=[bug.name for bug in LEDGER])
def test_seeded_bug_is_killed(bug, monkeypatch, request):
    kill = COMPARISONS[bug.killed_by](request, lambda model: bug.patch(monkeypatch, model))
    margin = kill.error / kill.tolerance
    print(f"\n{bug.name}: max abs diff {kill.error:.2e} at {kill.where} = {margin:.0f} x tolerance {kill.tolerance:g}")
    record(bug, kill)
    assert kill.error >= KILL_FACTOR * kill.tolerance, (
        f"{bug.name} ({bug.description}) survives {bug.killed_by}: "
        f"{kill.error:.2e} < {KILL_FACTOR} x {kill.tolerance:g}"
    )
