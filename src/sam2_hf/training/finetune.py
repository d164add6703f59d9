"""`finetune(...)`: a model and a data folder in, a fine-tuned variant out (model.safetensors, config.json,
processor config, model card), optionally pushed to the Hub. The command `sam2-hf finetune` (cli/finetune.py)
calls it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .recipe import FinetuneRecipe


@dataclass
class FinetuneResult:
    """What `finetune` returns: the trained model (LoRA merged), the trainer, and the validation metrics
    before and after training ({} without eval data)."""

    model: object
    trainer: object
    metrics_before: dict
    metrics_after: dict


def finetune(
    model: str,
    data,
    output_dir: str,
    *,
    image_size: int | None = None,
    eval_data=None,
    image_dir: str | None = None,
    recipe=None,
    lora_parts: tuple[str, ...] | None = None,
    lora_rank: int = 8,
    push_to_hub: str | None = None,
    base_model_id: str | None = None,
    command: str = "",
    overwrite_output_dir: bool = False,
    **training_arguments,
) -> FinetuneResult:
    """Fine-tune `model` on `data` and save the variant to `output_dir`.

    Args:
        model: Hub id, folder saved with save_pretrained, or a Meta / Ultralytics .pt.
        data, eval_data: anything `build_dataset` reads (folder, COCO JSON, `datasets.Dataset`, its `save_to_disk`
            folder or Hub id); `data` may be a list of them, each a source or a (source, weight) pair, trained on
            together (`MixedClipDataset`: each batch from one source, drawn with probability in proportion to its
            weight). A `DatasetDict` gives its "train" split to `data`, its "validation" split to `eval_data`.
        image_dir: the folder of COCO JSONs' images ("file_name" relative to it), e.g. COCO's `train2017/`.
        output_dir: where checkpoints and the final model, processor and model card go.
        image_size: train (and save) at this input size (default the model's).
        recipe: a `FinetuneRecipe`, its name ("meta", the default, or "fast") or a YAML / JSON recipe file
            (`FinetuneRecipe.load`).
        lora_parts: parts to adapt with LoRA of rank `lora_rank` (see `LORA_PARTS`); merged before saving.
        push_to_hub: a Hub repo id to push the result to.
        base_model_id: the base model's Hub id for the model card when `model` is a local file or folder (a Hub
            id given as `model` is used as is); without one the card names the file, never its path.
        command: the command line, recorded in the model card (local paths reduced to their names).
        overwrite_output_dir: start a new run in a non-empty `output_dir` (its old checkpoints are removed);
            without it that is refused, unless `resume_from_checkpoint` continues the run there (True: from its
            last checkpoint; see `checkpoint_to_resume`).
        **training_arguments: transformers `TrainingArguments` fields.
    Raises DataError for bad data (every problem named), OSError for a model that cannot be loaded.
    """
    from transformers import set_seed

    from ..predictors.video_processor import Sam2VideoProcessor
    from .data import build_dataset
    from .data_formats import is_hub_id
    from .evaluate import evaluate_model, item_counts
    from .lora import add_lora, merge_lora
    from .model import Sam2VideoModelForTraining
    from .model_card import (
        ModelCardInfo,
        base_model_license,
        framework_versions,
        public_name,
        training_hyperparameters,
    )
    from .trainer import Sam2Trainer, checkpoint_to_resume

    if not isinstance(recipe, FinetuneRecipe):
        recipe = FinetuneRecipe.load(recipe or "meta")
    resume = checkpoint_to_resume(output_dir, training_arguments.get("resume_from_checkpoint"), overwrite_output_dir)
    net = Sam2VideoModelForTraining.from_pretrained(model, **({"image_size": image_size} if image_size else {}))
    size = net.config.image_size
    seed = training_arguments.get("seed", 42)
    train_set = build_dataset(
        data,
        size,
        recipe.num_frames,
        recipe.max_num_objects,
        augment=True,
        seed=seed,
        sample_rate=recipe.sample_rate,
        reverse_time_prob=recipe.reverse_time_prob,
        image_dir=image_dir,
    )
    # Evaluation reads each annotated video whole: no clip length to require of it.
    eval_set = (
        build_dataset(eval_data, size, num_frames=1, augment=False, seed=seed, image_dir=image_dir, split="validation")
        if eval_data
        else None
    )
    if push_to_hub:
        training_arguments.update(push_to_hub=True, hub_model_id=push_to_hub, hub_strategy="end")
    args = recipe.training_arguments(output_dir, **training_arguments)
    net.to(args.device)
    before = evaluate_model(net, eval_set.videos) if eval_set is not None else {}
    if lora_parts:
        set_seed(args.seed)  # the adapters' initial values follow --seed, as the rest of the run
        add_lora(net, lora_parts, r=lora_rank, base_model=str(model))
    card = ModelCardInfo(
        name=push_to_hub or public_name(output_dir),
        base_model=base_model_id or public_name(model),
        base_model_id=base_model_id or (str(model) if is_hub_id(str(model)) else None),
        datasets=[public_name(source) for source in (data if isinstance(data, list) else [data])],
        eval_dataset=public_name(eval_data) if eval_data is not None else None,
        license=base_model_license(model),
        command=command,
        hyperparameters=training_hyperparameters(args, recipe, size, lora_parts, lora_rank),
        recipe=dataclasses.asdict(recipe),
        framework_versions=framework_versions(),
        metrics_before=before,
        eval_counts=item_counts(eval_set.videos) if eval_set is not None else {},
        notes=f"LoRA (rank {lora_rank}) on {', '.join(lora_parts)}, merged into the weights." if lora_parts else "",
    )
    trainer = Sam2Trainer(
        net,
        args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        recipe=recipe,
        model_card=card,
        processor=Sam2VideoProcessor.for_image_size(size),
    )
    trainer.train(resume_from_checkpoint=resume)
    if lora_parts:
        merge_lora(net)
    after = trainer.evaluate() if eval_set is not None else {}
    card.metrics_after = {k.removeprefix("eval_"): v for k, v in after.items()}
    if push_to_hub:  # saves the model and processor, writes the card, uploads the folder
        trainer.push_to_hub(commit_message="Fine-tuned with sam2-hf")
    else:
        trainer.save_model(output_dir)
        trainer.create_model_card()
    return FinetuneResult(net, trainer, before, card.metrics_after)
