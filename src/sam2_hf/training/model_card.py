"""The model card of a fine-tuned variant (huggingface_hub's `ModelCard`), a public page: metadata the Hub
indexes (license, base model, library, pipeline tag, tags, datasets, evaluation results as model-index), how it
was trained (hyperparameters, the recipe, framework versions, the command), its metrics before and after and
how they were measured, its limitations, and how to use it with sam2_hf and with stock transformers.

Nothing of the training machine enters the card: local files and folders appear by their names only
(`public_name`, `public_command`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data_formats import is_hub_id

# The license of Meta's SAM 2 and SAM 2.1 releases (code and checkpoints), which every base model descends from
# unless its own card says otherwise.
META_SAM2_LICENSE = "apache-2.0"
# metric -> (task type of the model-index, metric type)
METRIC_TASKS = {
    "mIoU@1": ("image-segmentation", "mean_iou"),
    "mIoU@5": ("image-segmentation", "mean_iou"),
    "J&F": ("video-object-segmentation", "j_and_f"),
    "J": ("video-object-segmentation", "jaccard"),
    "F": ("video-object-segmentation", "f_measure"),
}
TAGS = ["sam2", "sam2-hf", "segment-anything", "mask-generation", "video-object-segmentation", "fine-tuned"]
# Packages whose versions the card lists, when installed.
FRAMEWORKS = ("sam2-hf", "transformers", "torch", "peft", "datasets", "accelerate")

MEASURED = """Measured by `sam2_hf.training.evaluate.evaluate_model`, the code `sam2-hf eval` runs, on the model in eval
mode: **mIoU@1 / mIoU@5** (images) is the mean IoU over every object after 1 and 5 simulated clicks (the SAM 2
paper's protocol: each click at the centre of the largest error region; `sam2-hf eval clicks` prints the same
values as percentages); **J&F, J, F** (videos) track every object from its first-frame ground-truth mask with
Meta's `tools/vos_inference.py` settings (objects kept from overlapping) and score with the DAVIS 2017
conventions (first and last frames left out; `sam2-hf eval vos` prints the same values). All in [0, 1]."""

LIMITATIONS = """- The metrics above come from the validation data named here only; they say nothing of other domains.
- Fine-tuning narrows a general model: objects unlike the training data may segment worse than with the base model.
- SAM 2's own limitations apply (as the SAM 2 paper states them): tracking can fail through long occlusions, crowded
  scenes of similar objects, fast motion and thin or fine structures."""

USAGE = """## Use it

With [sam2-hf](https://github.com/sam2-hf/sam2-hf):

```python
from sam2_hf import Sam2VideoPredictor, Sam2ImagePredictor

predictor = Sam2VideoPredictor.from_pretrained("{repo}")      # video: Meta's predictor API
image_predictor = Sam2ImagePredictor.from_pretrained("{repo}")
```

With stock transformers (no sam2-hf needed):

```python
from transformers import Sam2VideoModel, Sam2VideoProcessor

model = Sam2VideoModel.from_pretrained("{repo}")
processor = Sam2VideoProcessor.from_pretrained("{repo}")
```

In the sam2-hf Space: `python app.py --model {repo}`.
"""


@dataclass
class ModelCardInfo:
    """What the card says about a fine-tuning run. Every text field is public: give names, not local paths
    (`public_name`); `card()` reduces any path left in `command` to its name.

    Args:
        name: the model's Hub id when pushed, else the output folder's name; the title and the usage snippets.
        base_model: the model fine-tuned, as a public name (a Hub id, or a local file's or folder's name).
        base_model_id: its Hub id when one is known (the `base_model` metadata the Hub links); None otherwise.
        datasets: the training data, each a Hub dataset id or a name (ids become the `datasets` metadata).
        eval_dataset: the validation data's name or Hub id (None: no validation data).
        license: the model's license (default Meta's SAM 2 release license, `META_SAM2_LICENSE`).
        command: the command that trained it (paths are reduced to names when the card is made).
        hyperparameters: {name: value} of the settings that matter (`training_hyperparameters`).
        recipe: the full `FinetuneRecipe` as a dict (prompt simulation, loss weights, ...).
        framework_versions: {package: version} (`framework_versions`).
        metrics_before, metrics_after: validation metrics ({"mIoU@1", "mIoU@5", "J&F", ...} in [0, 1]) of the
            base model and of the fine-tuned one; the "after" values become the model-index results.
        eval_counts: what the metrics were measured on, e.g. {"images": 16, "videos": 6}.
        notes: free text (e.g. LoRA settings).
    """

    name: str
    base_model: str
    datasets: list[str]
    base_model_id: str | None = None
    eval_dataset: str | None = None
    license: str = META_SAM2_LICENSE
    command: str = ""
    hyperparameters: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    framework_versions: dict[str, str] = field(default_factory=dict)
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    eval_counts: dict[str, int] = field(default_factory=dict)
    notes: str = ""

    def card(self, log_history: list[dict] | None = None) -> ModelCard:
        """The card: YAML metadata, then the body. log_history: Trainer's, for the final training loss."""
        data = ModelCardData(
            license=self.license,
            base_model=self.base_model_id,
            library_name="transformers",
            pipeline_tag="mask-generation",
            tags=TAGS,
            datasets=[d for d in self._all_datasets() if is_hub_id(d)] or None,
            model_name=self.name,
            eval_results=self._eval_results() or None,
        )
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{self._body(log_history or [])}")

    def save(self, output_dir, log_history: list[dict] | None = None) -> Path:
        """Write README.md (the card) into `output_dir`; -> its path."""
        path = Path(output_dir) / "README.md"
        self.card(log_history).save(path)
        return path

    def _all_datasets(self) -> list[str]:
        return list(dict.fromkeys([*self.datasets, *([self.eval_dataset] if self.eval_dataset else [])]))

    def _eval_results(self) -> list[EvalResult]:
        dataset = self.eval_dataset or ", ".join(self.datasets)
        return [
            EvalResult(
                task_type=METRIC_TASKS[name][0],
                dataset_type=dataset,
                dataset_name=dataset,
                metric_type=METRIC_TASKS[name][1],
                metric_name=name,
                metric_value=round(value, 4),
            )
            for name, value in self.metrics_after.items()
            if name in METRIC_TASKS
        ]

    def _body(self, log_history: list[dict]) -> str:
        data = ", ".join(f"`{d}`" for d in self.datasets)
        lines = [f"# {self.name}", "", f"SAM 2 fine-tuned from `{self.base_model}` on {data} with "
                 "[sam2-hf](https://github.com/sam2-hf/sam2-hf) (Meta's training step and losses on transformers' "
                 f"Trainer). License: {self.license}.", ""]  # fmt: skip
        lines += self._evaluation()
        lines += ["## Training", ""]
        if self.hyperparameters:
            lines += ["| hyperparameter | value |", "|---|---|"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in self.hyperparameters.items()]
            lines.append("")
        losses = [entry for entry in log_history if "loss" in entry]
        if losses:
            lines += [f"Final training loss {losses[-1]['loss']:.4f} at step {losses[-1].get('step')}.", ""]
        if self.notes:
            lines += [self.notes, ""]
        if self.recipe:
            lines += ["The whole recipe (`FinetuneRecipe` fields; saved as a .json file it is a `--recipe` file):", "",
                      "```json", json.dumps(self.recipe, indent=2)]  # fmt: skip
            lines += ["```", ""]
        if self.framework_versions:
            lines += ["Framework versions: " + ", ".join(f"{k} {v}" for k, v in self.framework_versions.items()), ""]
        lines += ["### Reproduce", ""]
        if self.command:
            lines += ["```bash", public_command(self.command), "```", ""]
        else:
            lines += ["Trained with the Python API (`sam2_hf.training.finetune.finetune`) with the settings above.", ""]
        lines += ["## Limitations", "", LIMITATIONS, ""]
        lines.append(USAGE.format(repo=self.name))
        return "\n".join(lines)

    def _evaluation(self) -> list[str]:
        if not (self.metrics_before or self.metrics_after):
            return ["## Evaluation", "", "No validation data was given: this card reports no metric.", ""]
        counts = ", ".join(f"{n} {what}" for what, n in self.eval_counts.items())
        lines = ["## Evaluation", "", f"On `{self.eval_dataset}`" + (f" ({counts})" if counts else "") + ":", ""]
        lines += ["| metric | before | after |", "|---|---|---|"]
        for name in dict.fromkeys([*self.metrics_before, *self.metrics_after]):
            before, after = self.metrics_before.get(name), self.metrics_after.get(name)
            lines.append(f"| {name} | {_fmt(before)} | {_fmt(after)} |")
        return [*lines, "", MEASURED, ""]


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _cell(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _value(setting) -> str:
    return str(getattr(setting, "value", setting))  # an enum's value ("cosine"), not its repr


def public_name(source) -> str:
    """How a model or data source appears in public: a Hub id as is; a local file or folder by its name (never its
    path); a `datasets.Dataset` by its dataset name (or "a datasets.Dataset of N rows"); a (source, sampling weight)
    pair by its source's name; a list, its names joined."""
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], (int, float)):
        return public_name(source[0])
    if isinstance(source, (list, tuple)):
        return ", ".join(public_name(s) for s in source)
    if isinstance(source, (str, Path)):
        return str(source) if is_hub_id(str(source)) else Path(os.path.abspath(source)).name
    name = getattr(getattr(source, "info", None), "dataset_name", None)
    return name or f"a {type(source).__module__.split('.')[0]}.{type(source).__name__} of {len(source)} rows"


def public_command(command: str) -> str:
    """`command` with every local path (absolute, or existing here) reduced to its name, `--opt=PATH` included."""

    def reduce(token: str) -> str:
        option, equals, value = token.partition("=") if token.startswith("--") else ("", "", token)
        if value and not is_hub_id(value) and (os.path.isabs(value) or Path(value).exists()):
            value = Path(os.path.abspath(value)).name
        return f"{option}{equals}{value}"

    return shlex.join(reduce(token) for token in shlex.split(command))


def base_model_license(model) -> str:
    """The license of the base model's own card when one is at hand without a download (a saved folder's README.md,
    or a Hub repo's README.md in the local cache), else Meta's SAM 2 release license."""
    from huggingface_hub import try_to_load_from_cache

    readme = None
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        readme = Path(model) / "README.md"
    elif is_hub_id(str(model)):
        cached = try_to_load_from_cache(str(model), "README.md")
        readme = Path(cached) if isinstance(cached, str) else None
    if readme is not None and readme.is_file():
        license_ = ModelCard.load(readme).data.license
        if license_:
            return license_
    return META_SAM2_LICENSE


def framework_versions() -> dict[str, str]:
    """{package: version} of `FRAMEWORKS` that are installed."""
    versions = {}
    for package in FRAMEWORKS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def training_hyperparameters(args, recipe, image_size: int, lora_parts=None, lora_rank: int = 8) -> dict:
    """The settings a reader needs to judge or repeat a run, from its `TrainingArguments` and `FinetuneRecipe`.
    Learning rates are the ones used (TrainingArguments' value, the recipe's scales applied)."""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
    frozen = ["image encoder"] if recipe.freeze_image_encoder else []
    values = {
        "learning rate (all but the image encoder)": args.learning_rate,
        "image encoder learning rate": args.learning_rate * recipe.vision_lr_scale,
        "layer-wise decay (image encoder)": recipe.layer_decay,
        "weight decay": args.weight_decay,
        "gradient clipping": args.max_grad_norm,
        "schedule": f"{_value(args.lr_scheduler_type)}, warmup {args.warmup_steps}",
        "steps": args.max_steps if args.max_steps > 0 else f"{args.num_train_epochs} epochs",
        "batch size (total)": batch,
        "image size": image_size,
        "frames per clip": recipe.num_frames,
        "objects per clip": recipe.max_num_objects,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "frozen": frozen or "nothing",
        "seed": args.seed,
    }
    if lora_parts:
        values.update({"LoRA rank": lora_rank, "LoRA targets": list(lora_parts)})
    return values
