"""Fine-tuning recipes: the optimizer values, clip settings, prompts and loss of a run, by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .losses import MultiStepMultiMasksAndIous
from .prompting import PromptSimulation

RECIPES = ("meta", "fast")


@dataclass
class FinetuneRecipe:
    """The settings of a fine-tuning run that `TrainingArguments` does not hold, plus the optimizer values.

    Args:
        learning_rate: AdamW learning rate of everything but the image encoder (Meta: 5e-6).
        vision_lr_scale: the image encoder's learning rate relative to `learning_rate` (Meta: 3e-6 / 5e-6 = 0.6).
        layer_decay: layer-wise decay of the image encoder's trunk: block i of L gets `layer_decay ** (L - i)`
            times its rate, the patch embedding `layer_decay ** (L + 1)`, position embeddings 1 (Meta: 0.9;
            1.0: none).
        weight_decay: AdamW weight decay, 0 for biases and LayerNorm weights (Meta: 0.1).
        max_grad_norm: gradient clipping (Meta: 0.1).
        min_lr_rate: cosine schedule from the rate to `min_lr_rate` times it (Meta: 0.1).
        num_frames, max_num_objects: clip length and objects per clip (Meta: 8 and 3).
        prompt_simulation: how prompts are drawn (`PromptSimulation.meta_finetune()` for Meta's).
        loss_weights, supervise_all_iou, iou_use_l1_loss, pred_obj_scores: `MultiStepMultiMasksAndIous`'s
            (Meta: focal 20, dice 1, IoU 1, object score 1; all IoUs; L1; object scores).
        freeze_image_encoder: train everything but the image encoder.
    """

    learning_rate: float = 5e-6
    vision_lr_scale: float = 0.6
    layer_decay: float = 0.9
    weight_decay: float = 0.1
    max_grad_norm: float = 0.1
    min_lr_rate: float = 0.1
    num_frames: int = 8
    max_num_objects: int = 3
    prompt_simulation: PromptSimulation = field(default_factory=PromptSimulation.meta_finetune)
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1}
    )
    supervise_all_iou: bool = True
    iou_use_l1_loss: bool = True
    pred_obj_scores: bool = True
    freeze_image_encoder: bool = False

    def __post_init__(self):
        """`num_frames` and `max_num_objects` are at least 1; clips of `num_frames` > 1 frames must hold the
        drawn conditioning and corrected frames (1-frame clips always get clicks or a box on their one frame).
        Raises ValueError naming the field otherwise."""
        for name in ("num_frames", "max_num_objects"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}.")
        prompts = self.prompt_simulation
        needed = {"num_init_cond_frames_for_train": prompts.num_init_cond_frames_for_train}
        if prompts.prob_to_use_pt_input_for_train > 0:
            needed["num_frames_to_correct_for_train"] = prompts.num_frames_to_correct_for_train
        for name, value in needed.items():
            if self.num_frames > 1 and value > self.num_frames:
                raise ValueError(
                    f"prompt_simulation.{name} ({value}) is more than the clip's num_frames ({self.num_frames}): "
                    "lower it or train on longer clips."
                )

    @classmethod
    def meta(cls) -> FinetuneRecipe:
        """Meta's `sam2.1_hiera_b+_MOSE_finetune.yaml` (its values are this class's defaults)."""
        return cls()

    @classmethod
    def fast(cls) -> FinetuneRecipe:
        """Meta's loss and prompts with rates for short runs on small data: 1e-4 everywhere, no layer decay,
        gradients clipped at 1.0."""
        return cls(learning_rate=1e-4, vision_lr_scale=1.0, layer_decay=1.0, max_grad_norm=1.0)

    @classmethod
    def named(cls, name: str, **overrides) -> FinetuneRecipe:
        """A recipe by name ("meta" or "fast"), with fields overridden. Raises ValueError for another name."""
        if name not in RECIPES:
            raise ValueError(f"Unknown recipe {name!r}; expected one of {RECIPES}.")
        return dataclasses.replace(getattr(cls, name)(), **overrides)

    def loss(self) -> MultiStepMultiMasksAndIous:
        return MultiStepMultiMasksAndIous(
            dict(self.loss_weights),
            supervise_all_iou=self.supervise_all_iou,
            iou_use_l1_loss=self.iou_use_l1_loss,
            pred_obj_scores=self.pred_obj_scores,
            focal_gamma_obj_score=0.0,
            focal_alpha_obj_score=-1.0,
        )

    def training_arguments(self, output_dir: str, **overrides):
        """`TrainingArguments` with this recipe's optimizer values and the loop's needs (`remove_unused_columns`
        off: batches are tensors, not dataset columns; DDP told that some parameters may get no gradient in a
        step); `overrides` are any other `TrainingArguments`."""
        values = dict(
            output_dir=output_dir,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": self.min_lr_rate},
            per_device_train_batch_size=1,
            remove_unused_columns=False,
            ddp_find_unused_parameters=True,  # e.g. the memory encoder on image batches (Meta sets it too)
            report_to="none",
        )
        values.update(overrides)
        from transformers import TrainingArguments

        return TrainingArguments(**values)
