"""SAM 2's training losses, with the contract of Meta's `training.loss_fns.MultiStepMultiMasksAndIous`.

Per prediction step (the first prompt and each corrective click) and per object: sigmoid focal loss and
dice loss on every output mask, the one with the smallest `focal * w_mask + dice * w_dice` back-propagated
(SAM's minimum over multimask outputs); the predicted IoU regressed on the actual IoU of each mask (all of
them with `supervise_all_iou`, else the chosen one); the object-score logit classified against "the object
is on this frame". Mask and IoU terms count only where the object is present. Every term is divided by the
number of objects in the batch (averaged across processes when torch.distributed runs).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss as elementwise_focal_loss

# The key of the weighted total in the returned dict (Meta's `training.trainer.CORE_LOSS_KEY`).
CORE_LOSS_KEY = "core_loss"
LOSS_TERMS = ("loss_mask", "loss_dice", "loss_iou", "loss_class")


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_objects: float) -> torch.Tensor:
    """Dice loss of each mask: inputs (N, M, H, W) logits, targets (N, M, H, W) in {0, 1} -> (N, M),
    `1 - (2|p t| + 1) / (|p| + |t| + 1)` with p = sigmoid(inputs), divided by `num_objects`."""
    prob = inputs.sigmoid().flatten(2)
    targets = targets.flatten(2)
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)) / num_objects


def focal_loss(
    inputs: torch.Tensor, targets: torch.Tensor, num_objects: float, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """RetinaNet's sigmoid focal loss (torchvision.ops.sigmoid_focal_loss) on logits `inputs` and {0, 1} `targets`:

    (N, M, H, W) masks -> (N, M): the mean over pixels, divided by `num_objects`.
    (N, K) scores -> a scalar: the mean over K summed over N, divided by `num_objects`.
    alpha < 0 disables the class weighting; gamma 0 gives plain binary cross-entropy.
    """
    loss = elementwise_focal_loss(inputs, targets, alpha=alpha, gamma=gamma, reduction="none")
    if loss.dim() == 4:
        return loss.flatten(2).mean(-1) / num_objects
    return loss.mean(1).sum() / num_objects


def iou_loss(
    inputs: torch.Tensor, targets: torch.Tensor, pred_ious: torch.Tensor, num_objects: float, use_l1_loss: bool = False
) -> torch.Tensor:
    """Error of the predicted IoUs: inputs (N, M, H, W) logits, targets (N, M, H, W), pred_ious (N, M) -> (N, M),
    MSE (or L1) against the actual IoU of `inputs > 0` with `targets > 0` (union clamped to >= 1 pixel),
    divided by `num_objects`."""
    pred = inputs.flatten(2) > 0
    gt = targets.flatten(2) > 0
    intersection = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    actual_ious = intersection / union.clamp(min=1.0)
    loss_fn = F.l1_loss if use_l1_loss else F.mse_loss
    return loss_fn(pred_ious, actual_ious, reduction="none") / num_objects


class MultiStepMultiMasksAndIous(nn.Module):
    """SAM 2's loss over every prediction step of every frame (Meta's class of the same name; same arguments).

    Args:
        weight_dict: weights of "loss_mask" (focal), "loss_dice", "loss_iou" and optionally "loss_class"
            (object score, default 0). Meta's recipe: 20, 1, 1, 1.
        focal_alpha, focal_gamma: the mask focal loss's parameters (0.25, 2).
        supervise_all_iou: regress the IoU prediction of every output mask (default: only the chosen one).
        iou_use_l1_loss: L1 instead of MSE for the IoU term.
        pred_obj_scores: train the object-score head (otherwise every object counts as present and the
            class term is 0).
        focal_gamma_obj_score, focal_alpha_obj_score: the object-score focal loss's parameters (0 and -1:
            plain binary cross-entropy).
    """

    def __init__(
        self,
        weight_dict: dict[str, float],
        focal_alpha: float = 0.25,
        focal_gamma: float = 2,
        supervise_all_iou: bool = False,
        iou_use_l1_loss: bool = False,
        pred_obj_scores: bool = False,
        focal_gamma_obj_score: float = 0.0,
        focal_alpha_obj_score: float = -1,
    ):
        super().__init__()
        missing = [k for k in LOSS_TERMS[:3] if k not in weight_dict]
        if missing:
            raise ValueError(f"weight_dict needs weights for {missing}; it has {sorted(weight_dict)}.")
        unknown = sorted(set(weight_dict) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"weight_dict has unknown terms {unknown}; the terms are {list(LOSS_TERMS)}.")
        self.weight_dict = {"loss_class": 0.0, **weight_dict}
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.supervise_all_iou = supervise_all_iou
        self.iou_use_l1_loss = iou_use_l1_loss
        self.pred_obj_scores = pred_obj_scores
        self.focal_gamma_obj_score = focal_gamma_obj_score
        self.focal_alpha_obj_score = focal_alpha_obj_score

    def forward(self, outs_batch: list[dict], targets_batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses of a clip batch.

        Args:
            outs_batch: one dict per frame (T of them), as `Sam2VideoModelForTraining.forward` (or Meta's
                `SAM2Train.forward`) returns, with lists over prediction steps of
                "multistep_pred_multimasks_high_res" (O, M, S, S) logits, "multistep_pred_ious" (O, M) and
                "multistep_object_score_logits" (O, 1).
            targets_batch: (T, O, S, S) ground-truth masks (bool or {0, 1}) of the O objects.

        Returns:
            dict of the summed terms "loss_mask", "loss_dice", "loss_iou", "loss_class" (scalars, already
            divided by the number of objects) and "core_loss", their weighted sum.
        """
        if len(outs_batch) != len(targets_batch):
            raise ValueError(f"{len(outs_batch)} frames of outputs but {len(targets_batch)} frames of targets.")
        num_objects = self._num_objects(targets_batch)
        losses = defaultdict(int)
        for outs, targets in zip(outs_batch, targets_batch):
            for k, v in self._frame_losses(outs, targets, num_objects).items():
                losses[k] += v
        return dict(losses)

    @staticmethod
    def _num_objects(targets_batch: torch.Tensor) -> float:
        """Objects per batch (fixed within a batch), averaged over processes, at least 1."""
        num_objects = torch.tensor(targets_batch.shape[1], device=targets_batch.device, dtype=torch.float)
        world_size = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_objects)
            world_size = dist.get_world_size()
        return torch.clamp(num_objects / world_size, min=1).item()

    def _frame_losses(self, outputs: dict, targets: torch.Tensor, num_objects: float) -> dict[str, torch.Tensor]:
        target_masks = targets.unsqueeze(1).float()  # (O, 1, S, S)
        steps = zip(
            outputs["multistep_pred_multimasks_high_res"],
            outputs["multistep_pred_ious"],
            outputs["multistep_object_score_logits"],
        )
        losses = dict.fromkeys(LOSS_TERMS, 0)
        for masks, ious, object_score_logits in steps:
            for k, v in self._step_losses(masks, target_masks, ious, object_score_logits, num_objects).items():
                losses[k] = losses[k] + v
        losses[CORE_LOSS_KEY] = self.reduce_loss(losses)
        return losses

    def _step_losses(self, masks, target_masks, ious, object_score_logits, num_objects) -> dict[str, torch.Tensor]:
        """One prediction step: masks (O, M, S, S) logits, target_masks (O, 1, S, S), ious (O, M),
        object_score_logits (O, 1) -> the four terms, summed over objects."""
        target_masks = target_masks.expand_as(masks)
        loss_multimask = focal_loss(masks, target_masks, num_objects, self.focal_alpha, self.focal_gamma)
        loss_multidice = dice_loss(masks, target_masks, num_objects)
        loss_multiiou = iou_loss(masks, target_masks, ious, num_objects, self.iou_use_l1_loss)
        if self.pred_obj_scores:
            target_obj = (target_masks[:, 0] > 0).flatten(1).any(dim=-1, keepdim=True).float()
            loss_class = focal_loss(
                object_score_logits, target_obj, num_objects, self.focal_alpha_obj_score, self.focal_gamma_obj_score
            )
        else:
            target_obj = loss_multimask.new_ones(loss_multimask.shape[0], 1)
            loss_class = loss_multimask.new_zeros(())
        loss_mask, loss_dice, loss_iou = self._best_mask_losses(loss_multimask, loss_multidice, loss_multiiou)
        return {
            "loss_mask": (loss_mask * target_obj).sum(),
            "loss_dice": (loss_dice * target_obj).sum(),
            "loss_iou": (loss_iou * target_obj).sum(),
            "loss_class": loss_class,
        }

    def _best_mask_losses(self, loss_multimask, loss_multidice, loss_multiiou):
        """(O, M) per-mask terms -> (O, 1): the mask with the lowest weighted focal + dice loss (SAM's rule);
        the IoU term of that mask, or the mean over all masks with `supervise_all_iou`."""
        if loss_multimask.shape[1] == 1:
            return loss_multimask, loss_multidice, loss_multiiou
        combo = loss_multimask * self.weight_dict["loss_mask"] + loss_multidice * self.weight_dict["loss_dice"]
        best = combo.argmin(dim=-1, keepdim=True)
        loss_iou = loss_multiiou.mean(dim=-1, keepdim=True) if self.supervise_all_iou else loss_multiiou.gather(1, best)
        return loss_multimask.gather(1, best), loss_multidice.gather(1, best), loss_iou

    def reduce_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of the terms (terms with weight 0 left out)."""
        total = 0.0
        for key, weight in self.weight_dict.items():
            if weight != 0:
                total = total + losses[key] * weight
        return total
