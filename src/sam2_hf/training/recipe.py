"""Fine-tuning recipes: the optimizer values, clip settings, prompts and loss of a run, by name or from a file.

A recipe file (YAML or JSON) names a base recipe and overrides any field; nested fields (`prompt_simulation`,
`loss_weights`) are merged into the base's, so a file holds only what differs:

    base: fast                      # "meta" (default) or "fast"
    num_frames: 4
    reverse_time_prob: 0.5
    loss_weights: {loss_mask: 10}   # the other terms keep the base's weights
    prompt_simulation:
      prob_to_use_box_input_for_train: 0.0
      num_correction_pt_per_frame: 3
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..processing.validation import read_json_file
from .losses import MultiStepMultiMasksAndIous
from .prompting import PromptSimulation

RECIPES = ("meta", "fast")
RECIPE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


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
        sample_rate: keep every n-th annotated frame of a video (Meta's `VOSRawDataset` `sample_rate`: 1).
        reverse_time_prob: probability of a clip played backwards (Meta's `RandomUniformSampler`: 0.0).
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
    sample_rate: int = 1
    reverse_time_prob: float = 0.0
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
        for name in ("num_frames", "max_num_objects", "sample_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}.")
        if not 0 <= self.reverse_time_prob <= 1:
            raise ValueError(f"reverse_time_prob is a probability (0 to 1), not {self.reverse_time_prob}.")
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

    @classmethod
    def load(cls, source: str | os.PathLike, **overrides) -> FinetuneRecipe:
        """A recipe by name ("meta", "fast") or from a YAML / JSON recipe file (see the module's docstring),
        with fields overridden by `overrides`.

        Raises FileNotFoundError for a missing file, ValueError naming the file and the problem for anything
        else: another name or suffix, unreadable YAML / JSON, an unknown field (with the close known names),
        a value of the wrong type or out of range.
        """
        if str(source) in RECIPES:
            return cls.named(str(source), **overrides)
        path = Path(source)
        if path.suffix.lower() not in RECIPE_FILE_SUFFIXES:
            raise ValueError(
                f"Unknown recipe {str(source)!r}: expected one of {RECIPES} or a recipe file "
                f"({' / '.join(RECIPE_FILE_SUFFIXES)})."
            )
        recipe = cls.from_dict(_read_recipe_file(path), source=path.name)
        return dataclasses.replace(recipe, **overrides)

    @classmethod
    def from_dict(cls, values: Mapping, source: str = "recipe") -> FinetuneRecipe:
        """The recipe named by `values["base"]` ("meta" when absent) with the other entries as field overrides;
        nested dataclass and dict fields are merged into the base's. Numbers written as text ("5e-6", which
        YAML 1.1 readers leave a string) are read as numbers. Raises ValueError prefixed with `source`."""
        if not isinstance(values, Mapping):
            raise ValueError(f"{source}: a recipe is a mapping of field names to values, not {type(values).__name__}.")
        values = dict(values)
        base = values.pop("base", "meta")
        if base not in RECIPES:
            raise ValueError(f"{source}: base {base!r} is not a recipe; expected one of {RECIPES}.")
        try:
            return _replace_fields(getattr(cls, base)(), values, source)
        except ValueError as e:
            raise ValueError(e.args[0] if str(e).startswith(source) else f"{source}: {e}") from None

    def loss(self) -> MultiStepMultiMasksAndIous:
        """The training loss with this recipe's weights and options; object scores by binary cross-entropy (Meta's
        focal loss with gamma 0 and no alpha). Raises ValueError for loss weights of unknown terms."""
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
        step); `overrides` are any other `TrainingArguments`.

        `bf16=True` on a machine without an accelerator trains with bf16 autocast on the CPU (`use_cpu=True`,
        unless `use_cpu` is given), where transformers alone refuses ("Your setup doesn't support bf16/gpu").
        Raises ValueError for `bf16=True` on an accelerator without bf16, saying what to set instead.
        """
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
        if (values.get("bf16") or values.get("bf16_full_eval")) and "use_cpu" not in overrides:
            values["use_cpu"] = bf16_needs_cpu()
        from transformers import TrainingArguments

        return TrainingArguments(**values)


def bf16_needs_cpu() -> bool:
    """True when no accelerator is present (bf16 then runs under the CPU's autocast), False when one supports
    bf16 (or XLA decides). Raises ValueError for an accelerator without bf16 (CUDA before Ampere)."""
    import torch
    from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

    if is_torch_bf16_gpu_available() or is_torch_xla_available():
        return False
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator.is_available() if accelerator else torch.cuda.is_available():
        raise ValueError(
            "bf16=True: this machine's accelerator does not support bf16 (CUDA needs an Ampere or later GPU); "
            "set fp16=True instead, or use_cpu=True to train with bf16 on the CPU."
        )
    return True


def _read_recipe_file(path: Path):
    """The parsed content of a .json (`read_json_file`) or .yaml / .yml (`yaml.safe_load`) recipe file."""
    if path.suffix.lower() == ".json":
        return read_json_file(path)
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"No recipe file at {str(path)!r}.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{path.name}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path.name}: not a YAML file (binary content, not UTF-8 text).") from None


def _replace_fields(instance, values, where: str):
    """`instance` (a dataclass) with the fields in `values` replaced, each checked against its annotation."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a mapping of field names to values, got {values!r}.")
    hints = typing.get_type_hints(type(instance))
    names = [f.name for f in dataclasses.fields(instance) if f.init]
    changes = {}
    for name, value in values.items():
        _check_known(name, names, where)
        changes[name] = _checked_value(getattr(instance, name), hints[name], value, f"{where}.{name}")
    return dataclasses.replace(instance, **changes)


def _check_known(name, known: list[str], where: str) -> None:
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"{where}: unknown field {name!r}; {hint}(known: {', '.join(known)})")


def _checked_value(current, kind, value, where: str):
    """`value` for a field annotated `kind` whose base value is `current`: dataclasses and dicts merged, numbers
    and flags checked (an int is a float; a bool is neither). Raises ValueError naming `where`."""
    if dataclasses.is_dataclass(current):
        return _replace_fields(current, value, where)
    if isinstance(current, dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}.")
        for key in value:
            _check_known(key, list(current), where)
        value_kind = typing.get_args(kind)[1]
        return {**current, **{k: _checked_value(current[k], value_kind, v, f"{where}.{k}") for k, v in value.items()}}
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    accepted = {float: (int, float), int: (int,), bool: (bool,), str: (str,)}[kind]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, accepted):
        raise ValueError(f"{where}: expected {kind.__name__}, got {value!r} ({type(value).__name__}).")
    return kind(value)
