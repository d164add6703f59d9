"""`finetune(...)` and `sam2-hf finetune`: a model and a data folder in, a fine-tuned variant out
(model.safetensors, config.json, processor config, model card), optionally pushed to the Hub.

    sam2-hf finetune --model facebook/sam2.1-hiera-tiny --data my_videos/ --output-dir out/ \\
        --eval-data my_val/ --max-steps 2000 --push-to-hub me/sam2-my-objects

Options other than the ones below are transformers' `TrainingArguments`, spelled as there
(`--learning_rate 1e-5`, `--gradient_accumulation_steps 4`, `--bf16`, `--report_to tensorboard`, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ..cli import fail
from .lora import DEFAULT_LORA_PARTS, LORA_PARTS
from .recipe import RECIPES, FinetuneRecipe

# Options of `sam2-hf finetune` that are not TrainingArguments.
OWN_OPTIONS = ("model", "data", "eval_data", "image_size", "check_data", "recipe", "lora", "lora_rank", "push_to_hub")
# Options that override the recipe's field of the same name.
RECIPE_OPTIONS = ("num_frames", "max_num_objects", "freeze_image_encoder")


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
    recipe=None,
    lora_parts: tuple[str, ...] | None = None,
    lora_rank: int = 8,
    push_to_hub: str | None = None,
    command: str = "",
    **training_arguments,
) -> FinetuneResult:
    """Fine-tune `model` on `data` and save the variant to `output_dir`.

    Args:
        model: Hub id, folder saved with save_pretrained, or a Meta / Ultralytics .pt.
        data, eval_data: anything `build_dataset` reads (folder, COCO JSON, `datasets.Dataset`).
        output_dir: where checkpoints and the final model, processor and model card go.
        image_size: train (and save) at this input size (default the model's).
        recipe: a `FinetuneRecipe` or its name ("meta", the default, or "fast").
        lora_parts: parts to adapt with LoRA of rank `lora_rank` (see `LORA_PARTS`); merged before saving.
        push_to_hub: a Hub repo id to push the result to.
        command: the command line, recorded in the model card.
        **training_arguments: transformers `TrainingArguments` fields.
    Raises DataError for bad data (every problem named), OSError for a model that cannot be loaded.
    """
    from ..processing_sam2_video import Sam2VideoProcessor
    from .data import build_dataset
    from .evaluate import evaluate_model
    from .lora import add_lora, merge_lora
    from .model import Sam2VideoModelForTraining
    from .model_card import ModelCardInfo
    from .trainer import Sam2Trainer

    if not isinstance(recipe, FinetuneRecipe):
        recipe = FinetuneRecipe.named(recipe or "meta")
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
    )
    # Evaluation reads each annotated video whole: no clip length to require of it.
    eval_set = build_dataset(eval_data, size, num_frames=1, augment=False, seed=seed) if eval_data else None
    if push_to_hub:
        training_arguments.update(push_to_hub=True, hub_model_id=push_to_hub, hub_strategy="end")
    args = recipe.training_arguments(output_dir, **training_arguments)
    net.to(args.device)
    before = evaluate_model(net, eval_set.videos) if eval_set is not None else {}
    if lora_parts:
        add_lora(net, lora_parts, r=lora_rank)
    card = ModelCardInfo(
        repo_id=push_to_hub or str(output_dir),
        base_model=str(model),
        dataset_name=_name(data),
        command=command,
        image_size=size,
        metrics_before=before,
        eval_dataset_name=_name(eval_data) if eval_data is not None else None,
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
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
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


def _name(source) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name or str(source)
    return getattr(getattr(source, "info", None), "dataset_name", None) or type(source).__name__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="Hub id, saved folder, or Meta / Ultralytics .pt (not for --check-data)")
    parser.add_argument("--data", required=True, help="training data: folder (layout detected) or COCO JSON")
    parser.add_argument("--eval-data", dest="eval_data", help="validation data (mIoU@1/@5 on images, J&F on videos)")
    parser.add_argument(
        "--image-size", dest="image_size", type=int, help="model input size (default the model's; --check-data: 1024)"
    )
    parser.add_argument("--check-data", dest="check_data", action="store_true", help="list every data problem, exit")
    parser.add_argument("--recipe", default="meta", help=f"{', '.join(RECIPES)} or a YAML / JSON recipe file")
    parser.add_argument(
        "--lora", nargs="*", choices=sorted(LORA_PARTS), help=f"LoRA on these parts (none given: {DEFAULT_LORA_PARTS})"
    )
    parser.add_argument("--lora-rank", dest="lora_rank", type=int, default=8)
    parser.add_argument("--num-frames", dest="num_frames", type=int, help="frames per training clip (recipe: 8)")
    parser.add_argument("--max-num-objects", dest="max_num_objects", type=int, help="objects per clip (recipe: 3)")
    parser.add_argument(
        "--freeze-image-encoder", dest="freeze_image_encoder", action="store_const", const=True, help="train the rest"
    )
    parser.add_argument("--push-to-hub", dest="push_to_hub", metavar="REPO", help="push the result to this Hub repo")
    _add_training_arguments(parser)


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Every `TrainingArguments` field as `--name` (and `--name-with-dashes`), kept as text and parsed by
    transformers' own `HfArgumentParser` in `run`; a flag given without a value means true."""
    from transformers import TrainingArguments

    group = parser.add_argument_group("TrainingArguments (transformers)")
    for f in dataclasses.fields(TrainingArguments):
        if not f.init or f.name in OWN_OPTIONS + RECIPE_OPTIONS:
            continue
        names = dict.fromkeys([f"--{f.name}", f"--{f.name.replace('_', '-')}"])
        group.add_argument(
            *names, dest=f"ta_{f.name}", nargs="?", const="true", default=argparse.SUPPRESS, metavar="VALUE"
        )


def training_arguments_from(args: argparse.Namespace) -> dict:
    """The `TrainingArguments` fields given on the command line, converted by `HfArgumentParser`."""
    from transformers import HfArgumentParser, TrainingArguments

    given = {k.removeprefix("ta_"): v for k, v in vars(args).items() if k.startswith("ta_")}
    if "output_dir" not in given:
        raise ValueError("--output-dir is required.")
    argv = [item for name, value in given.items() for item in (f"--{name}", value)]
    parser = HfArgumentParser(TrainingArguments)
    parser.error = _raise  # a bad value: one line naming it, not that parser's usage of every field
    (parsed,) = parser.parse_args_into_dataclasses(argv)
    _check_reporting(parsed.report_to)
    return {name: getattr(parsed, name) for name in given}


def _raise(message: str):
    raise ValueError(message)


def _check_reporting(report_to: list[str]) -> None:
    """ValueError for a `--report_to` target whose package is not installed (transformers fails later, in
    `Trainer`, with a traceback)."""
    from transformers.integrations import get_available_reporting_integrations

    missing = sorted(set(report_to) - {"none", "all"} - set(get_available_reporting_integrations()))
    if missing:
        raise ValueError(
            f"--report_to {' '.join(missing)}: the package is not installed here; the reporting integrations "
            f"installed are: {', '.join(get_available_reporting_integrations()) or 'none'}."
        )


def _recipe(args: argparse.Namespace):
    """The recipe named or written in a file by --recipe, with the command line's overrides (--num-frames,
    --max-num-objects, ...). A recipe that cannot be read exits 2 with one line saying why."""
    overrides = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    try:
        return FinetuneRecipe.load(args.recipe, **overrides)
    except (OSError, ValueError) as e:
        sys.exit(fail(f"--recipe {args.recipe}: {e}"))


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 trained (or data clean with --check-data), 1 data problems found by --check-data,
    2 bad arguments, data or model (the message says which)."""
    from .data import DataError, check_dataset

    if args.check_data:
        size = args.image_size or 1024  # SAM 2's input size; the model is not loaded to check data
        problems = check_dataset(args.data, _recipe(args).num_frames, size)
        problems += check_dataset(args.eval_data, 1, size) if args.eval_data else []  # evaluated whole
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' * (len(problems) != 1)} found.", file=sys.stderr)
        return 1 if problems else 0
    if not args.model:
        return fail("--model is required (a Hub id, a saved folder or a .pt file) unless --check-data is given")
    try:
        training_arguments = training_arguments_from(args)
        lora = (args.lora or list(DEFAULT_LORA_PARTS)) if args.lora is not None else None
        if lora and args.lora_rank < 1:
            raise ValueError(f"--lora-rank must be at least 1, not {args.lora_rank}.")
        result = finetune(
            args.model,
            args.data,
            training_arguments.pop("output_dir"),
            image_size=args.image_size,
            eval_data=args.eval_data,
            recipe=_recipe(args),
            lora_parts=tuple(lora) if lora else None,
            lora_rank=args.lora_rank,
            push_to_hub=args.push_to_hub,
            command=" ".join(["sam2-hf", "finetune", *map(shlex.quote, sys.argv[2:])]),
            **training_arguments,
        )
    except DataError as e:
        return fail(f"{e}\n(`sam2-hf finetune --data {args.data} --check-data` lists every problem of the dataset)")
    except (OSError, ValueError) as e:  # the model or the arguments
        return fail(str(e))
    for name, value in result.metrics_after.items():
        print(f"{name}: {result.metrics_before.get(name, float('nan')):.4f} -> {value:.4f}")
    return 0
