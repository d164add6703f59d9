"""The fine-tuning loop: transformers' `Trainer` with SAM 2's training step, loss, optimizer recipe and metrics.

    model = Sam2VideoModelForTraining.from_pretrained("facebook/sam2.1-hiera-tiny")
    recipe = FinetuneRecipe.meta()                       # Meta's MOSE fine-tuning values
    trainer = Sam2Trainer(model, recipe.training_arguments("out/", max_steps=1000), train_dataset=train,
                          eval_dataset=val, recipe=recipe)
    trainer.train(); trainer.save_model(); trainer.push_to_hub()   # model, processor, model card

Everything `Trainer` offers works unchanged: `TrainingArguments` (gradient accumulation, bf16/fp16,
checkpoints and `resume_from_checkpoint`, `report_to`), and many GPUs with `accelerate launch` / `torchrun`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME, TRAINING_ARGS_NAME
from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints
from transformers.utils import logging

from .data import MixedClipDataset, collate_clips
from .evaluate import evaluate_model
from .lora import ADAPTER_WEIGHTS_NAME, load_lora_adapter, lora_config, save_lora_adapter
from .losses import CORE_LOSS_KEY, LOSS_TERMS
from .recipe import FinetuneRecipe

IMAGE_ENCODER_PREFIX = "vision_encoder."
TRUNK_PREFIX = "vision_encoder.backbone."
# Checkpoint file of the prompt simulation's generator, beside Trainer's rng_state.pth (per process, as that).
PROMPT_RNG_STATE_NAME = "prompt_rng_state"

logger = logging.get_logger(__name__)


def parameter_groups(
    model: nn.Module, learning_rate: float, vision_lr_scale: float, layer_decay: float, weight_decay: float
) -> list[dict]:
    """AdamW parameter groups of Meta's recipe (`training.optimizer.layer_decay_param_modifier` and its
    weight-decay rule): each trainable parameter's rate and decay as `FinetuneRecipe` describes, parameters
    with equal values grouped. -> [{"params", "lr", "weight_decay"}]."""
    no_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None}
    num_blocks = len(model.vision_encoder.backbone.blocks)
    groups: dict[tuple[float, float], list] = defaultdict(list)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = vision_lr_scale if name.startswith(IMAGE_ENCODER_PREFIX) else 1.0
        lr = learning_rate * scale * layer_scale(name, num_blocks, layer_decay)
        decay = 0.0 if ("bias" in name or id(param) in no_decay) else weight_decay
        groups[(lr, decay)].append(param)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def layer_scale(name: str, num_blocks: int, layer_decay: float) -> float:
    """Learning-rate scale of a parameter under layer-wise decay of the image encoder's trunk (BEiT's rule,
    as Meta's Hiera `get_layer_id`): blocks.i -> decay^(L - i), patch embedding -> decay^(L + 1), position
    embeddings and everything outside the trunk -> 1."""
    if not name.startswith(TRUNK_PREFIX) or "pos_embed" in name:
        return 1.0
    block = re.search(r"\.blocks\.(\d+)\.", name)
    if block:
        return layer_decay ** (num_blocks - int(block.group(1)))
    if "patch_embed" in name:
        return layer_decay ** (num_blocks + 1)
    return 1.0


def checkpoint_to_resume(
    output_dir: str, resume_from_checkpoint: str | bool | None = None, overwrite_output_dir: bool = False
) -> str | None:
    """Where a run that writes to `output_dir` starts: the checkpoint folder to resume from, or None for a new run
    (transformers' `Trainer.train(resume_from_checkpoint=...)` reading, checked before any work is done).

    Args:
        output_dir: the run's output folder.
        resume_from_checkpoint: a checkpoint folder; True (or "true", the command line's bare flag): the last
            checkpoint of `output_dir` (`transformers.trainer_utils.get_last_checkpoint`); None / False: a new run.
        overwrite_output_dir: a new run may write into a non-empty `output_dir`; its `checkpoint-N` folders are
            removed then, so that they are not taken for the new run's (resuming keeps them).
    Raises:
        ValueError: nothing to resume from (no checkpoint in `output_dir`, or a folder without trainer_state.json),
            or a new run into a non-empty `output_dir` without `overwrite_output_dir` (naming what is there).
    """
    if resume_from_checkpoint in (True, "true"):
        checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if checkpoint is None:
            raise ValueError(f"--resume_from_checkpoint: no checkpoint-N folder in {output_dir} to resume from.")
        return checkpoint
    if resume_from_checkpoint:
        if not os.path.isfile(os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME)):
            raise ValueError(
                f"--resume_from_checkpoint {resume_from_checkpoint}: not a checkpoint (no {TRAINER_STATE_NAME})."
            )
        return str(resume_from_checkpoint)
    content = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
    if content and not overwrite_output_dir:
        names = [name + "/" * os.path.isdir(os.path.join(output_dir, name)) for name in content]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        raise ValueError(
            f"The output folder {output_dir} is not empty ({shown}): pass --overwrite_output_dir to replace it, or "
            "--resume_from_checkpoint to continue the run checkpointed there."
        )
    for checkpoint in sort_checkpoints(output_dir) if content else []:
        shutil.rmtree(checkpoint, ignore_errors=True)  # every process of a distributed run may get here
    return None


class DatasetEpochCallback(TrainerCallback):
    """Gives the training dataset the epoch at each epoch's start (`ClipDataset.set_epoch`: each epoch's clips
    are drawn from (seed, epoch, idx)). accelerate's data loader does so too, except through the batch skipper
    of an epoch resumed mid-way, where the dataset would draw epoch 0's clips."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(int(state.epoch))  # whole at an epoch's start; a resumed epoch's index


class Sam2Trainer(Trainer):
    """`transformers.Trainer` for `Sam2VideoModelForTraining` on `ClipSample` datasets.

    Args:
        model: a `Sam2VideoModelForTraining` (its prompt simulation is set from the recipe).
        args: `TrainingArguments` (`FinetuneRecipe.training_arguments` fills the recipe's values).
        train_dataset, eval_dataset: `ClipDataset`s (`build_dataset`); evaluation reads the eval dataset's
            annotated items (`.videos`) whole: mIoU with 1 and 5 clicks on images, J&F on videos.
        recipe: the `FinetuneRecipe` (default `FinetuneRecipe.meta()`): loss, optimizer groups, prompts.
        max_eval_items: score at most this many images and videos per evaluation.
        processor: saved beside the model by every `save_model` (checkpoints, the final save, `push_to_hub`),
            e.g. `Sam2VideoProcessor.for_image_size(S)`. (Not Trainer's `processing_class`: transformers 5.23's
            `Trainer.train` reads a tokenizer from any processor it is given, and SAM 2's has none.)
        model_card: `ModelCardInfo` written by `create_model_card` (and so by `push_to_hub`).
        **kwargs: any other `Trainer` argument (`callbacks`, ...); `data_collator` defaults to `collate_clips`.
    Logs the loss terms ("loss_mask", "loss_dice", "loss_iou", "loss_class") beside "loss", averaged since
    the last log.
    """

    def __init__(
        self,
        model,
        args: TrainingArguments,
        train_dataset=None,
        eval_dataset=None,
        recipe: FinetuneRecipe | None = None,
        max_eval_items: int | None = None,
        processor=None,
        model_card=None,
        **kwargs,
    ):
        self.recipe = recipe or FinetuneRecipe.meta()
        model.set_prompt_simulation(self.recipe.prompt_simulation)
        if self.recipe.freeze_image_encoder:
            model.freeze_image_encoder()
        kwargs.setdefault("data_collator", collate_clips)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, **kwargs)
        self.add_callback(DatasetEpochCallback)
        self.loss_fn = self.recipe.loss()
        self.max_eval_items = max_eval_items
        self.processor = processor
        self.model_card = model_card
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_count = 0

    def _get_train_sampler(self, train_dataset=None):
        """Trainer's sampler, except for a `MixedClipDataset` (several data sources): its `sampler`, whose runs of
        `per_device_train_batch_size` items come from one source each (a batch's clips share their frame count)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, MixedClipDataset):
            return dataset.sampler(self._train_batch_size)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The batch's `core_loss` (the weighted sum of `MultiStepMultiMasksAndIous`'s terms).

        When every frame of the batch was given its ground truth as a mask input (possible for clips no longer
        than the number of initial conditioning frames, e.g. 2-frame clips with Meta's recipe), the outputs
        are those masks and nothing depends on a weight: the loss then gets a zero-gradient link to the
        trainable weights, so the step's gradients are zero instead of `backward` raising.
        """
        outputs = model(**inputs)
        losses = self.loss_fn(outputs, inputs["masks"])
        loss = losses[CORE_LOSS_KEY]
        if model.training:
            for key in LOSS_TERMS:
                self._term_sums[key] += float(losses[key].detach())
            self._term_count += 1
            if torch.is_grad_enabled() and not loss.requires_grad:
                loss = loss + sum(0.0 * p.sum() for p in model.parameters() if p.requires_grad)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._term_count:
            logs.update({k: round(v / self._term_count, 6) for k, v in self._term_sums.items()})
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, *args, **kwargs)

    def create_optimizer(self, *args, **kwargs):
        """AdamW on `parameter_groups` (Meta's rates, layer decay and weight-decay rule), the betas and
        epsilon of `TrainingArguments`."""
        if self.optimizer is None:
            r, a = self.recipe, self.args
            groups = parameter_groups(self.model, a.learning_rate, r.vision_lr_scale, r.layer_decay, a.weight_decay)
            self.optimizer = torch.optim.AdamW(groups, betas=(a.adam_beta1, a.adam_beta2), eps=a.adam_epsilon)
        return self.optimizer

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """mIoU@1 / mIoU@5 (images) and J&F, J, F (videos) of the model on the eval dataset, logged with the
        `metric_key_prefix` (e.g. "eval_J&F")."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("Sam2Trainer.evaluate needs an eval_dataset (a ClipDataset from build_dataset).")
        model = self.accelerator.unwrap_model(self.model)
        metrics = evaluate_model(model, dataset.videos, self.max_eval_items)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        self.log(dict(metrics))  # Trainer.log adds the epoch to the dict it is given
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Trainer's `save_model` (config.json, model.safetensors), plus the processor's config."""
        super().save_model(output_dir, _internal_call)
        if self.processor is not None and self.is_world_process_zero():
            self.processor.save_pretrained(output_dir or self.args.output_dir)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Trainer's save (config.json, model.safetensors); a model that carries LoRA adapters (checkpoints of a
        LoRA run: `merge_lora` comes before the final save) saves its adapters only, in peft's format
        (`save_lora_adapter`): no config.json or model.safetensors that a model class would load half
        initialised at random."""
        model = self.accelerator.unwrap_model(self.model)
        if lora_config(model) is None:
            return super()._save(output_dir, state_dict)
        if self.args.should_save:
            output_dir = output_dir or self.args.output_dir
            save_lora_adapter(model, output_dir)
            torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Trainer's, or the LoRA adapters of a LoRA run's checkpoint (`load_lora_adapter`). Raises ValueError
        for a checkpoint that holds only adapters when the model has none (resumed without --lora)."""
        unwrapped = self.accelerator.unwrap_model(model or self.model)
        if lora_config(unwrapped) is not None:
            load_lora_adapter(unwrapped, resume_from_checkpoint)
        elif os.path.isfile(os.path.join(resume_from_checkpoint, ADAPTER_WEIGHTS_NAME)):
            raise ValueError(
                f"{resume_from_checkpoint} holds the LoRA adapters of a LoRA run: resume it with its --lora options."
            )
        else:
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        """Trainer's (`load_best_model_at_end`), or the best checkpoint's LoRA adapters in a LoRA run."""
        model = self.accelerator.unwrap_model(self.model)
        if lora_config(model) is not None:
            load_lora_adapter(model, self.state.best_model_checkpoint)
        else:
            super()._load_best_model()

    def _save_rng_state(self, output_dir: str) -> None:
        """Trainer's random states (python, numpy's global, torch: rng_state.pth) and the prompt simulation's
        own numpy generator (`Sam2VideoModelForTraining.prompt_rng`), which Trainer does not know of:
        prompt_rng_state.json (`_<process index>` in a distributed run, as Trainer's file)."""
        super()._save_rng_state(output_dir)
        state = self.accelerator.unwrap_model(self.model).prompt_rng.bit_generator.state
        with open(self._prompt_rng_file(output_dir), "w") as f:
            json.dump(state, f)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        """Restore what `_save_rng_state` saved, so that a resumed run draws the prompts of the uninterrupted
        one. A checkpoint without the prompt generator's state (written before it was saved) resumes with a
        warning."""
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = self._prompt_rng_file(checkpoint)
        if not os.path.isfile(path):
            logger.warning(f"{path} is missing: the prompts drawn from now on differ from the uninterrupted run's.")
            return
        with open(path) as f:
            self.accelerator.unwrap_model(self.model).prompt_rng.bit_generator.state = json.load(f)

    def _prompt_rng_file(self, checkpoint: str) -> str:
        suffix = f"_{self.args.process_index}" if self.args.world_size > 1 else ""
        return os.path.join(checkpoint, f"{PROMPT_RNG_STATE_NAME}{suffix}.json")

    def create_model_card(self, **kwargs) -> None:
        """Write this project's model card (`ModelCardInfo`) into the output folder instead of Trainer's."""
        if self.model_card is not None and self.is_world_process_zero():
            self.model_card.save(self.args.output_dir, self.state.log_history)
