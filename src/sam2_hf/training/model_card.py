"""The model card of a fine-tuned variant (huggingface_hub's `ModelCard`): metadata the Hub indexes
(base model, library, pipeline tag, tags, datasets, evaluation results as model-index), how it was trained,
its metrics before and after, and how to use it with sam2_hf and with stock transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# metric -> (task type of the model-index, metric type)
METRIC_TASKS = {
    "mIoU@1": ("image-segmentation", "mean_iou"),
    "mIoU@5": ("image-segmentation", "mean_iou"),
    "J&F": ("video-object-segmentation", "j_and_f"),
    "J": ("video-object-segmentation", "jaccard"),
    "F": ("video-object-segmentation", "f_measure"),
}
TAGS = ["sam2", "sam2-hf", "segment-anything", "mask-generation", "video-object-segmentation", "fine-tuned"]

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
    """What the card says about a fine-tuning run.

    Args:
        repo_id: the model's Hub id (or folder) used in the usage snippets.
        base_model: the model fine-tuned (Hub id, folder or .pt).
        dataset_name: the training data (a Hub dataset id, or a folder's name).
        command: the command line that trained it.
        image_size: input size S it was trained at.
        metrics_before, metrics_after: validation metrics ({"mIoU@1", "mIoU@5", "J&F", ...} in [0, 1]) of the
            base model and of the fine-tuned one; the "after" values become the model-index results.
        eval_dataset_name: the validation data.
        notes: free text (e.g. LoRA settings).
    """

    repo_id: str
    base_model: str
    dataset_name: str
    command: str = ""
    image_size: int = 1024
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    eval_dataset_name: str | None = None
    notes: str = ""

    def card(self, log_history: list[dict] | None = None) -> ModelCard:
        data = ModelCardData(
            base_model=self.base_model if "/" in self.base_model and not Path(self.base_model).exists() else None,
            library_name="transformers",
            pipeline_tag="mask-generation",
            tags=TAGS,
            datasets=[self.dataset_name] if "/" in self.dataset_name else None,
            model_name=self.repo_id,
            eval_results=self._eval_results() or None,
        )
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{self._body(log_history or [])}")

    def save(self, output_dir, log_history: list[dict] | None = None) -> Path:
        """Write README.md (the card) into `output_dir`; -> its path."""
        path = Path(output_dir) / "README.md"
        self.card(log_history).save(path)
        return path

    def _eval_results(self) -> list[EvalResult]:
        dataset = self.eval_dataset_name or self.dataset_name
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
        lines = [
            f"# {self.repo_id}",
            "",
            f"SAM 2 fine-tuned from `{self.base_model}` on `{self.dataset_name}` at {self.image_size} px with "
            "[sam2-hf](https://github.com/sam2-hf/sam2-hf) (Meta's training step and losses on transformers' Trainer).",
            "",
        ]
        if self.metrics_before or self.metrics_after:
            lines += ["## Evaluation", "", f"On `{self.eval_dataset_name or self.dataset_name}`:", ""]
            lines += ["| metric | before | after |", "|---|---|---|"]
            for name in dict.fromkeys([*self.metrics_before, *self.metrics_after]):
                before, after = self.metrics_before.get(name), self.metrics_after.get(name)
                lines.append(f"| {name} | {_fmt(before)} | {_fmt(after)} |")
            lines.append("")
        if self.command:
            lines += ["## Training", "", "```bash", self.command, "```", ""]
        losses = [entry for entry in log_history if "loss" in entry]
        if losses:
            lines += [f"Final training loss {losses[-1]['loss']:.4f} at step {losses[-1].get('step')}.", ""]
        if self.notes:
            lines += [self.notes, ""]
        lines.append(USAGE.format(repo=self.repo_id))
        return "\n".join(lines)


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"
