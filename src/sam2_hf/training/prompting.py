"""Prompts simulated per training clip, as Meta's `training.model.sam2.SAM2Train` draws them.

A clip's objects get either their ground-truth masks or, with some probability, clicks or a box on 1..K
initial conditioning frames; with clicks, corrective clicks are then sampled from the error between the
prediction and the ground truth on up to `num_frames_to_correct` frames. Decisions come from a numpy
generator (seeded like Meta's, 42) and point positions from torch's generator, drawn in the reference's
order, so a seeded run draws the same prompts as `SAM2Train`.

Coordinates are (x, y) pixels of the model input (S x S); click labels 1 positive, 0 negative, box corners 2
(top left) and 3 (bottom right), as the prompt encoder takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

SAMPLING_METHODS = ("uniform", "center")


@dataclass
class PromptSimulation:
    """How prompts are simulated per clip: Meta's `SAM2Train` arguments, with its names and defaults.

    "for_train" values apply in training mode, "for_eval" ones in eval mode.

    Args:
        prob_to_use_pt_input_for_train / _for_eval: probability of clicks or a box instead of ground-truth
            masks on the initial conditioning frames (0.0). One-frame clips (images) always use them.
        prob_to_use_box_input_for_train / _for_eval: given clicks, probability of a box instead (0.0).
        num_frames_to_correct_for_train / _for_eval: frames that receive corrective clicks, the initial
            conditioning frames first (1: only the first frame). Must be >= num_init_cond_frames.
        rand_frames_to_correct_for_train / _for_eval: draw that number uniformly from
            num_init_cond_frames..num_frames_to_correct (False).
        num_init_cond_frames_for_train / _for_eval: initial conditioning frames: the first frame plus
            randomly chosen others (1).
        rand_init_cond_frames_for_train / _for_eval: draw that number uniformly from 1..num_init_cond_frames
            (True for train, False for eval).
        add_all_frames_to_correct_as_cond: a frame that receives corrective clicks becomes a conditioning
            frame of the memory (False).
        num_correction_pt_per_frame: corrective clicks per corrected frame, each one more decoder step (7).
        pt_sampling_for_eval: "center" (the point deepest inside the error, as the SAM papers evaluate) or
            "uniform"; training always samples uniformly from the error region.
        prob_to_sample_from_gt_for_train: probability of sampling a corrective click from the ground truth
            rather than from the error (0.0).
        seed: seed of the decisions' numpy generator (Meta's fixed 42).
    """

    prob_to_use_pt_input_for_train: float = 0.0
    prob_to_use_pt_input_for_eval: float = 0.0
    prob_to_use_box_input_for_train: float = 0.0
    prob_to_use_box_input_for_eval: float = 0.0
    num_frames_to_correct_for_train: int = 1
    num_frames_to_correct_for_eval: int = 1
    rand_frames_to_correct_for_train: bool = False
    rand_frames_to_correct_for_eval: bool = False
    num_init_cond_frames_for_train: int = 1
    num_init_cond_frames_for_eval: int = 1
    rand_init_cond_frames_for_train: bool = True
    rand_init_cond_frames_for_eval: bool = False
    add_all_frames_to_correct_as_cond: bool = False
    num_correction_pt_per_frame: int = 7
    pt_sampling_for_eval: str = "center"
    prob_to_sample_from_gt_for_train: float = 0.0
    seed: int = 42

    def __post_init__(self):
        if self.pt_sampling_for_eval not in SAMPLING_METHODS:
            raise ValueError(
                f"pt_sampling_for_eval must be one of {SAMPLING_METHODS}, not {self.pt_sampling_for_eval!r}."
            )
        for mode in ("train", "eval"):
            init = self.mode_value("num_init_cond_frames", mode)
            correct = self.mode_value("num_frames_to_correct", mode)
            if init < 1:
                raise ValueError(f"num_init_cond_frames_for_{mode} must be >= 1, not {init}.")
            if self.mode_value("prob_to_use_pt_input", mode) > 0 and correct < init:
                raise ValueError(
                    f"num_frames_to_correct_for_{mode} ({correct}) must be >= num_init_cond_frames_for_{mode} ({init})."
                )

    @classmethod
    def meta_finetune(cls) -> PromptSimulation:
        """The values of Meta's `sam2.1_hiera_b+_MOSE_finetune.yaml`: clicks or a box on half of the clips,
        1-2 initial conditioning frames, corrections on 1-2 frames which become conditioning frames."""
        return cls(
            prob_to_use_pt_input_for_train=0.5,
            prob_to_use_box_input_for_train=0.5,
            prob_to_sample_from_gt_for_train=0.1,
            num_frames_to_correct_for_train=2,
            rand_frames_to_correct_for_train=True,
            add_all_frames_to_correct_as_cond=True,
            num_init_cond_frames_for_train=2,
            rand_init_cond_frames_for_train=True,
            num_correction_pt_per_frame=7,
        )

    def mode_value(self, name: str, mode: str):
        """The `name_for_train` or `name_for_eval` value."""
        return getattr(self, f"{name}_for_{mode}")


@dataclass
class ClipPrompts:
    """The prompts drawn for one clip batch (every object of the batch shares the plan, as in the reference).

    use_pt_input: clicks/box (True) or ground-truth masks (False) on the initial conditioning frames.
    init_cond_frames: the initial conditioning frames, the first one first; they are processed first.
    frames_not_in_init_cond: the other frames, in order.
    frames_to_add_correction_pt: frames that receive corrective clicks.
    point_inputs: frame -> (coords (O, K, 2) float pixels, labels (O, K) int32).
    mask_inputs: frame -> (O, 1, S, S) bool ground-truth masks.
    """

    use_pt_input: bool
    init_cond_frames: list[int]
    frames_not_in_init_cond: list[int]
    frames_to_add_correction_pt: list[int]
    point_inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def processing_order(self) -> list[int]:
        return self.init_cond_frames + self.frames_not_in_init_cond


def draw_clip_prompts(
    simulation: PromptSimulation, gt_masks: torch.Tensor, training: bool, rng: np.random.Generator
) -> ClipPrompts:
    """Prompts for a clip batch (Meta's `SAM2Train.prepare_prompt_inputs`, start frame 0).

    Args:
        simulation: the probabilities and counts.
        gt_masks: (T, O, S, S) bool ground-truth masks.
        training: use the "for_train" values and uniform sampling (else "for_eval" and `pt_sampling_for_eval`).
        rng: the decisions' generator (advanced in the reference's order).
    """
    mode = "train" if training else "eval"
    num_frames = gt_masks.shape[0]
    prob_pt = simulation.mode_value("prob_to_use_pt_input", mode)
    num_correct = simulation.mode_value("num_frames_to_correct", mode)
    num_init = simulation.mode_value("num_init_cond_frames", mode)
    if num_frames == 1:  # images: always clicks or a box, on the one frame
        prob_pt, num_correct, num_init = 1.0, 1, 1
    use_pt_input = rng.random() < prob_pt
    if simulation.mode_value("rand_init_cond_frames", mode) and num_init > 1:
        num_init = int(rng.integers(1, num_init, endpoint=True))
    if use_pt_input and simulation.mode_value("rand_frames_to_correct", mode) and num_correct > num_init:
        num_correct = int(rng.integers(num_init, num_correct, endpoint=True))

    init_cond_frames = [0]
    if num_init > 1:
        init_cond_frames += rng.choice(range(1, num_frames), num_init - 1, replace=False).tolist()
    others = [t for t in range(num_frames) if t not in init_cond_frames]
    prompts = ClipPrompts(use_pt_input, init_cond_frames, others, [])
    method = "uniform" if training else simulation.pt_sampling_for_eval
    prob_box = simulation.mode_value("prob_to_use_box_input", mode)
    for t in init_cond_frames:
        masks = gt_masks[t].unsqueeze(1)
        if not use_pt_input:
            prompts.mask_inputs[t] = masks
        elif rng.random() < prob_box:
            prompts.point_inputs[t] = sample_box_points(masks)
        else:
            prompts.point_inputs[t] = next_point(masks, None, method)

    if use_pt_input:
        extra = rng.choice(others, num_correct - num_init, replace=False).tolist() if num_correct > num_init else []
        prompts.frames_to_add_correction_pt = init_cond_frames + extra
    return prompts


def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool -> (B, 1, 4) int32 boxes x0, y0, x1, y1 (inclusive pixel indices); an empty mask
    gives (W, H, -1, -1), as the reference's `mask_to_box`."""
    _, _, h, w = masks.shape
    xs = torch.arange(w, device=masks.device, dtype=torch.int32).expand_as(masks)
    ys = torch.arange(h, device=masks.device, dtype=torch.int32)[:, None].expand_as(masks)
    lowest = lambda grid, empty: torch.where(masks, grid, empty).flatten(-2).min(dim=-1).values
    highest = lambda grid: torch.where(masks, grid, -1).flatten(-2).max(dim=-1).values
    return torch.stack((lowest(xs, w), lowest(ys, h), highest(xs), highest(ys)), dim=-1)


def sample_box_points(masks: torch.Tensor, noise: float = 0.1, noise_bound: int = 20):
    """A noisy box around each mask, as two corner points (SAM's training boxes; Meta's `sample_box_points`).

    masks (B, 1, H, W) bool -> coords (B, 2, 2) float pixels (top left, bottom right), labels (B, 2) int32
    (2, 3). Each coordinate moves by up to `noise` of the box's width/height, at most `noise_bound` pixels,
    uniformly (torch's generator), then is clamped to the image.

    An empty mask (an object absent from a prompted frame, e.g. a second conditioning frame it has left) has
    no box: it gets a negative click in the background, drawn as `sample_point_from_errors` draws it for an
    empty ground truth, and a "not a point" (label -1, SAM's own padding: the prompt encoder adds one to clicks
    given without a box), so every object keeps two points and is prompted as SAM is by a lone negative click.
    Meta's `sample_box_points` gives it the inverted box (W-1, H-1) -> (0, 0) spanning the whole image, which
    prompts the object everywhere (facebookresearch/sam2#470).
    """
    coords, labels = _noisy_boxes(masks, noise, noise_bound)
    absent = ~masks.flatten(1).any(1)
    if absent.any():
        click, click_label = sample_point_from_errors(masks[absent], None)
        coords[absent] = torch.cat([click, torch.zeros_like(click)], dim=1)
        labels[absent] = torch.cat([click_label, torch.full_like(click_label, -1)], dim=1)
    return coords, labels


def _noisy_boxes(masks: torch.Tensor, noise: float, noise_bound: int):
    """Meta's `sample_box_points` unchanged: coords (B, 2, 2), labels (B, 2); an empty mask's box inverted."""
    b, _, h, w = masks.shape
    box = mask_to_box(masks)
    labels = torch.tensor([2, 3], dtype=torch.int32, device=masks.device).repeat(b)
    if noise > 0:
        bound = torch.tensor(noise_bound, device=masks.device)
        max_dx = torch.min((box[..., 2] - box[..., 0]) * noise, bound)
        max_dy = torch.min((box[..., 3] - box[..., 1]) * noise, bound)
        jitter = (2 * torch.rand(b, 1, 4, device=masks.device) - 1) * torch.stack((max_dx, max_dy, max_dx, max_dy), -1)
        box = box + jitter
        limits = torch.tensor([w, h, w, h], device=masks.device) - 1
        box = box.clamp(torch.zeros_like(limits), limits)
    return box.reshape(-1, 2, 2), labels.reshape(-1, 2)


def error_regions(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None):
    """(B, 1, H, W) bool masks -> false-positive and false-negative regions (an absent prediction is empty)."""
    if pred_masks is None:
        pred_masks = torch.zeros_like(gt_masks)
    if gt_masks.dtype != torch.bool or pred_masks.dtype != torch.bool or pred_masks.shape != gt_masks.shape:
        raise ValueError("gt_masks and pred_masks must be bool tensors of the same (B, 1, H, W) shape.")
    return ~gt_masks & pred_masks, gt_masks & ~pred_masks


def sample_point_from_errors(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None):
    """One click per mask drawn uniformly from its error region (training's corrective click).

    gt_masks, pred_masks (B, 1, H, W) bool -> coords (B, 1, 2) float pixels, labels (B, 1) int32: 1 in a
    missed (false-negative) pixel, 0 in a false-positive one; a perfect prediction gets a negative click in
    the background. Draws one torch.rand per pixel and region, as the reference.
    """
    fp, fn = error_regions(gt_masks, pred_masks)
    b, _, h, w = gt_masks.shape
    all_correct = (fp | fn).flatten(2).any(dim=2).logical_not()[..., None, None]
    noise = torch.rand(b, 1, h, w, 2, device=gt_masks.device)
    noise[..., 0] *= fp | (all_correct & ~gt_masks)
    noise[..., 1] *= fn
    index = noise.flatten(2).argmax(dim=2)
    labels = (index % 2).to(torch.int32)
    pixel = index // 2
    return torch.stack([pixel % w, pixel // w], dim=2).float(), labels


def sample_point_from_error_center(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None):
    """One click per mask at the error pixel farthest from the error's boundary (RITM / SAM evaluation clicks).

    gt_masks, pred_masks (B, 1, H, W) bool -> coords (B, 1, 2) float pixels, labels (B, 1) int32: positive
    when the deepest missed pixel is deeper than the deepest false-positive one, else negative. Distances are
    OpenCV's exact L2 distance transform with the image border counted as boundary.
    """
    fp, fn = error_regions(gt_masks, pred_masks)
    coords = torch.zeros(gt_masks.shape[0], 1, 2)
    labels = torch.ones(gt_masks.shape[0], 1, dtype=torch.int32)
    for i, (fp_i, fn_i) in enumerate(zip(fp[:, 0].cpu().numpy(), fn[:, 0].cpu().numpy())):
        depth_fn, depth_fp = _depth(fn_i), _depth(fp_i)
        positive = depth_fn.max() > depth_fp.max()
        y, x = np.unravel_index(np.argmax(depth_fn if positive else depth_fp), fn_i.shape)
        coords[i, 0] = torch.tensor([float(x), float(y)])
        labels[i, 0] = int(positive)
    return coords.to(gt_masks.device), labels.to(gt_masks.device)


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of `region` (H, W) bool to its boundary, the image border included."""
    padded = np.pad(region, 1).astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def next_point(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None, method: str):
    """The next simulated click: "uniform" (`sample_point_from_errors`) or "center"
    (`sample_point_from_error_center`). -> coords (B, 1, 2), labels (B, 1)."""
    if method == "uniform":
        return sample_point_from_errors(gt_masks, pred_masks)
    if method == "center":
        return sample_point_from_error_center(gt_masks, pred_masks)
    raise ValueError(f"Unknown point sampling method {method!r}; expected one of {SAMPLING_METHODS}.")


def add_points(point_inputs, coords: torch.Tensor, labels: torch.Tensor):
    """Append clicks (B, k, 2), (B, k) to a prompt's (coords, labels) (None: no clicks yet)."""
    if point_inputs is None:
        return coords, labels
    return torch.cat([point_inputs[0], coords], dim=1), torch.cat([point_inputs[1], labels], dim=1)
