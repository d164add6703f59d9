"""`sam2-hf finetune`: the command line of `training.finetune.finetune`.

    sam2-hf finetune --model facebook/sam2.1-hiera-tiny --data my_videos/ --output-dir out/ \\
        --eval-data my_val/ --max-steps 2000 --push-to-hub me/sam2-my-objects

Options other than the ones below are transformers' `TrainingArguments`, spelled as there
(`--learning_rate 1e-5`, `--gradient_accumulation_steps 4`, `--bf16`, `--report_to tensorboard`, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys

from ..training.finetune import finetune
from ..training.lora import DEFAULT_LORA_PARTS, LORA_PARTS
from ..training.recipe import RECIPES, FinetuneRecipe, bf16_needs_cpu
from .common import fail

# Options of `sam2-hf finetune` that are not TrainingArguments.
OWN_OPTIONS = ("model", "data", "eval_data", "image_size", "check_data", "recipe", "lora", "lora_rank", "push_to_hub",
               "base_model_id")  # fmt: skip
# Options that override the recipe's field of the same name.
RECIPE_OPTIONS = ("num_frames", "max_num_objects", "freeze_image_encoder")
# Given without a value: from the last checkpoint of --output-dir.
RESUME_OPTION = "--resume_from_checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="Hub id, saved folder, or Meta / Ultralytics .pt (not for --check-data)")
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        type=_data_source,
        metavar="DATA[:WEIGHT]",
        help="training data: a folder (layout detected), a COCO JSON, a datasets save_to_disk folder or a Hub dataset "
        "id (its train split). Repeat to train on several (e.g. images and videos): each batch comes from one, drawn "
        "with probability in proportion to its WEIGHT (give every --data one, or none: then in proportion to its size)",
    )
    parser.add_argument("--image-dir", dest="image_dir", help="the COCO JSON's image folder (e.g. COCO's train2017/)")
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
    parser.add_argument(
        "--base-model-id", dest="base_model_id", metavar="REPO", help="the Hub id of a --model given as a local file"
    )
    parser.add_argument(
        "--overwrite_output_dir",
        "--overwrite-output-dir",
        dest="overwrite_output_dir",
        action="store_true",
        help="start a new run in a non-empty --output-dir, removing its checkpoints (else refused)",
    )
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
    if given.get("bf16", "false").lower() in ("true", "1", "yes") and "use_cpu" not in given and bf16_needs_cpu():
        given["use_cpu"] = "true"  # bf16 autocast on the CPU, as `FinetuneRecipe.training_arguments` does
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


def _data_source(text: str):
    """argparse type of --data: `parse_data_source`, its mistakes as argparse errors."""
    from ..training.data import parse_data_source

    try:
        return parse_data_source(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _data_options(sources: list) -> str:
    """The --data options naming `sources` (weights left out)."""
    return " ".join(f"--data {shlex.quote(str(s[0] if isinstance(s, tuple) else s))}" for s in sources)


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
    2 bad arguments, data or model (the message says which), 130 interrupted (Ctrl-C: the message says how
    to resume)."""
    from ..training.data import DataError, check_dataset

    if args.check_data:
        size = args.image_size or 1024  # SAM 2's input size; the model is not loaded to check data
        try:
            recipe = _recipe(args)
            problems = check_dataset(args.data, recipe.num_frames, size, image_dir=args.image_dir,
                                     sample_rate=recipe.sample_rate)  # fmt: skip
        except ValueError as e:  # weights on some --data only
            return fail(str(e))
        if args.eval_data:  # evaluated whole: no clip length
            problems += check_dataset(args.eval_data, 1, size, image_dir=args.image_dir, split="validation")
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
            image_dir=args.image_dir,
            recipe=_recipe(args),
            lora_parts=tuple(lora) if lora else None,
            lora_rank=args.lora_rank,
            push_to_hub=args.push_to_hub,
            base_model_id=args.base_model_id,
            command=shlex.join(["sam2-hf", *args.argv]),
            overwrite_output_dir=args.overwrite_output_dir,
            **training_arguments,
        )
    except KeyboardInterrupt:
        return _interrupted(args)
    except DataError as e:
        return fail(
            f"{e}\n(`sam2-hf finetune {_data_options(args.data)} --check-data` lists every problem of the dataset)"
        )
    except (OSError, ValueError) as e:  # the model or the arguments
        return fail(str(e))
    for name, value in result.metrics_after.items():
        print(f"{name}: {result.metrics_before.get(name, float('nan')):.4f} -> {value:.4f}")
    return 0


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C during training: one line with the command that goes on from the last checkpoint (the same
    command with a bare --resume_from_checkpoint), or that starts again when none was written yet. -> 130, a
    shell's status for SIGINT."""
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = getattr(args, "ta_output_dir", "")
    checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    words = ["sam2-hf", *_without_resume_option(args.argv)]
    if checkpoint is not None:
        fail(f"interrupted; resume from {checkpoint} with: {shlex.join([*words, RESUME_OPTION])}")
    else:
        words += ["--overwrite_output_dir"] * bool(os.path.isdir(output_dir) and os.listdir(output_dir))
        fail(f"interrupted before the first checkpoint; start again with: {shlex.join(words)}")
    return 130


def _without_resume_option(argv: list[str]) -> list[str]:
    """The command line's words less any --resume_from_checkpoint option and its value."""
    names = (RESUME_OPTION, RESUME_OPTION.replace("_", "-"))
    words, skip_value = [], False
    for word in argv:
        if skip_value and not word.startswith("-"):
            skip_value = False
            continue
        skip_value = word in names
        if not (skip_value or word.startswith(tuple(f"{n}=" for n in names))):
            words.append(word)
    return words
