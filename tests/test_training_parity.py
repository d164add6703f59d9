"""Fine-tuning: the training step and losses equal Meta's `SAM2Train` + `MultiStepMultiMasksAndIous`.

Same seeded random weights (through Meta's `.pt`), same clip, same seeds: the prompts are drawn by both
sides from the same generators (numpy's for decisions, torch's for positions), so the clicks, boxes and
corrective clicks are equal, and then every loss term (1e-5 relative) and every parameter's gradient after
one backward pass (1e-3 relative, in norm; and the total norm) must agree. Dropout is 0 on both sides (its
random draws cannot be matched). Each case checks that its path is not trivial: corrective clicks happen,
masks are partial, memory is read, an object leaves the clip.
"""

from __future__ import annotations

import pytest
import torch

from sam2_hf.models.checkpoint import convert_meta_state_dict
from sam2_hf.training import MultiStepMultiMasksAndIous, PromptSimulation, Sam2VideoModelForTraining

from reference import build_meta_model

pytest.importorskip("sam2", reason="Meta's reference implementation (pip install sam2==1.1.0) is needed")
meta_training = pytest.importorskip(
    "training.loss_fns", reason="Meta's training package (in the sam2 wheel) needs tensordict and tensorboard"
)

IMAGE_SIZE = 256
# Meta's fine-tuning loss settings (sam2.1_hiera_b+_MOSE_finetune.yaml).
WEIGHTS = {"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1}
LOSS_ARGS = dict(
    supervise_all_iou=True,
    iou_use_l1_loss=True,
    pred_obj_scores=True,
    focal_gamma_obj_score=0.0,
    focal_alpha_obj_score=-1.0,
)
CASES = {
    # name: (frames T, clips B, train mode, PromptSimulation arguments)
    "image-clicks": (1, 2, True, dict(num_correction_pt_per_frame=7)),
    "image-box": (1, 2, True, dict(prob_to_use_box_input_for_train=1.0, num_correction_pt_per_frame=3)),
    "clip-clicks": (
        3,
        1,
        True,
        dict(
            prob_to_use_pt_input_for_train=1.0,
            num_frames_to_correct_for_train=2,
            add_all_frames_to_correct_as_cond=True,
            num_correction_pt_per_frame=3,
            prob_to_sample_from_gt_for_train=0.3,
        ),
    ),
    "clip-two-cond-frames": (
        3,
        1,
        True,
        dict(
            prob_to_use_pt_input_for_train=1.0,
            num_init_cond_frames_for_train=2,
            rand_init_cond_frames_for_train=False,
            num_frames_to_correct_for_train=2,
            num_correction_pt_per_frame=2,
        ),
    ),
    "clip-mask": (3, 1, True, dict(prob_to_use_pt_input_for_train=0.0)),
    "clip-clicks-eval": (3, 1, False, dict(prob_to_use_pt_input_for_eval=1.0, num_correction_pt_per_frame=3)),
}


def clip_batch(num_frames: int, num_clips: int):
    """Frames (T, B, 3, S, S), masks (T, O, S, S) and obj_to_frame_idx (T, O, 2): two moving objects per
    clip; in clips, the second object leaves on the last frame (an absent target)."""
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(num_frames, num_clips, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    masks = torch.zeros(num_frames, 2 * num_clips, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    index = torch.zeros(num_frames, 2 * num_clips, 2, dtype=torch.long)
    for t in range(num_frames):
        for b in range(num_clips):
            masks[t, 2 * b, 40 + 5 * t + 9 * b : 120 + 5 * t, 50:140] = True
            if num_frames == 1 or t < num_frames - 1:
                masks[t, 2 * b + 1, 150:220, 100 + 4 * t : 200 + 4 * t - 7 * b] = True
            index[t, 2 * b : 2 * b + 2] = torch.tensor([t, b])
    return pixels, masks, index


def meta_batch(pixels, masks, index):
    from training.utils.data_utils import BatchedVideoDatapoint, BatchedVideoMetaData

    t, o = masks.shape[:2]
    metadata = BatchedVideoMetaData(
        unique_objects_identifier=torch.zeros(t, o, 3, dtype=torch.long),
        frame_orig_size=torch.zeros(t, o, 2, dtype=torch.long),
        batch_size=[t],
    )
    return BatchedVideoDatapoint(
        img_batch=pixels, obj_to_frame_idx=index.int(), masks=masks, metadata=metadata, dict_key="all", batch_size=[t]
    )


@pytest.fixture(scope="module")
def checkpoint(reference_models):
    return reference_models("tiny", "2.1", IMAGE_SIZE).path


def run_both(checkpoint, case):
    num_frames, num_clips, train, simulation = CASES[case]
    meta = build_meta_model("tiny", "2.1", IMAGE_SIZE, train_kwargs=simulation)
    meta.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    ours = Sam2VideoModelForTraining.from_pretrained(
        checkpoint, image_size=IMAGE_SIZE, memory_attention_dropout=0.0, memory_attention_rope_dropout=0.0
    )
    ours.set_prompt_simulation(PromptSimulation(**simulation))
    meta.train(train)
    ours.train(train)
    pixels, masks, index = clip_batch(num_frames, num_clips)
    torch.manual_seed(7)
    meta_out = meta(meta_batch(pixels, masks, index))
    meta_losses = meta_training.MultiStepMultiMasksAndIous(dict(WEIGHTS), **LOSS_ARGS)(meta_out, masks)
    torch.manual_seed(7)
    our_out = ours(pixels, masks, index)
    our_losses = MultiStepMultiMasksAndIous(dict(WEIGHTS), **LOSS_ARGS)(our_out, masks)
    return (meta, meta_out, meta_losses), (ours, our_out, our_losses), masks


def assert_not_trivial(case, outputs, losses, masks):
    final = torch.cat([o["pred_masks_high_res"] for o in outputs], dim=1) > 0  # (O, T, S, S)
    covered = final.flatten(2).float().mean(-1)
    assert ((covered > 0.01) & (covered < 0.99)).any(), f"{case}: no partial mask ({covered.tolist()})"
    assert all(losses[k] > 0 for k in ("loss_mask", "loss_dice", "loss_iou", "loss_class")), case
    steps = [len(o["multistep_pred_ious"]) for o in outputs]
    if "mask" not in case:
        assert max(steps) > 1, f"{case}: no corrective clicks"
    if masks.shape[0] > 1:
        assert not masks[-1, 1].any() and masks[0, 1].any(), "an object leaves the clip"


@pytest.mark.parametrize("case", list(CASES))
def test_losses_and_gradients_match_meta(checkpoint, case):
    (meta, meta_out, meta_losses), (ours, our_out, our_losses), masks = run_both(checkpoint, case)
    assert_not_trivial(case, our_out, our_losses, masks)
    for t, (m, o) in enumerate(zip(meta_out, our_out)):  # the same prompts were drawn
        meta_points = m["multistep_point_inputs"][-1]
        if meta_points is None:
            assert o["multistep_point_inputs"] is None, (case, t)
        else:
            assert torch.equal(meta_points["point_coords"], o["multistep_point_inputs"][0]), (case, t)
            assert torch.equal(meta_points["point_labels"], o["multistep_point_inputs"][1]), (case, t)
    for key, expected in meta_losses.items():
        assert abs(our_losses[key].item() - expected.item()) <= 1e-5 * abs(expected.item()) + 1e-8, (case, key)
    if not ours.training:
        return
    meta_losses["core_loss"].backward()
    our_losses["core_loss"].backward()
    meta_grads = convert_meta_state_dict({n: p.grad for n, p in meta.named_parameters() if p.grad is not None})
    our_grads = {n: p.grad for n, p in ours.named_parameters() if p.grad is not None}
    assert set(our_grads) == set(meta_grads), case
    meta_norm = torch.stack([g.norm() for g in meta_grads.values()]).norm()
    our_norm = torch.stack([g.norm() for g in our_grads.values()]).norm()
    assert abs(our_norm - meta_norm) <= 1e-3 * meta_norm, case
    for name, expected in meta_grads.items():
        error = (our_grads[name] - expected).norm()
        # A gradient that is 0 in exact arithmetic (attention keys' biases: softmax ignores a constant shift;
        # heads that no step used) holds rounding noise on both sides: compared to the total, not to itself.
        assert error <= 1e-3 * expected.norm() or error <= 1e-7 * meta_norm, (case, name, error, expected.norm())
