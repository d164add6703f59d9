"""Fine-tuning publishes true numbers: the metrics the Trainer logs and the model card states are the ones
`sam2-hf eval clicks` / `sam2-hf eval vos` print for the saved folder on the same data, and the card is a public
page (license, base model as a Hub id or a file name, hyperparameters, versions; no path of this machine)."""

from __future__ import annotations

import json
import re

import pytest
from huggingface_hub import ModelCard

from sam2_hf import Sam2ImagePredictor, Sam2VideoPredictor
from sam2_hf.cli import main
from sam2_hf.evaluation.clicks import evaluate_coco
from sam2_hf.evaluation.scoring import score_folder, summarize
from sam2_hf.training import FinetuneRecipe
from sam2_hf.training.data import build_dataset, make_synthetic_dataset
from sam2_hf.training.evaluate import image_click_miou, video_jf
from sam2_hf.training.finetune import finetune
from sam2_hf.training.model_card import base_model_license, public_command, public_name

IMAGE_SIZE = 256
# Two steps, evaluated after each: the second evaluation is mid-run-style (after a training step, with the
# model in training mode), the final one is on the saved weights.
RUN = dict(recipe="fast", max_steps=2, use_cpu=True, save_strategy="no", report_to="none", seed=0,
           eval_strategy="steps", eval_steps=1, learning_rate=1e-3)  # fmt: skip


@pytest.fixture(scope="module")
def base_model(reference_models):
    return str(reference_models("tiny", "2.1", IMAGE_SIZE).path)


def logged(result, name: str) -> list[float]:
    return [entry[f"eval_{name}"] for entry in result.trainer.state.log_history if f"eval_{name}" in entry]


def card_metrics(folder) -> dict[str, float]:
    return {r.metric_name: r.metric_value for r in ModelCard.load(folder / "README.md").data.eval_results}


def test_image_metrics_in_the_log_and_card_equal_eval_clicks(base_model, tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "coco", kind="coco", num_items=3)
    annotations, out = data / "annotations.json", tmp_path / "variant"
    result = finetune(base_model, annotations, str(out), image_size=IMAGE_SIZE, eval_data=annotations, **RUN)
    after = result.metrics_after
    assert logged(result, "mIoU@1")[-1] == after["mIoU@1"] and logged(result, "mIoU@5")[-1] == after["mIoU@5"]
    assert len(logged(result, "mIoU@1")) >= 2  # mid-run evaluations ran too
    assert 0 < after["mIoU@1"] < 1 and 0 < after["mIoU@5"] < 1  # neither empty nor whole-image masks
    assert card_metrics(out) == {k: round(v, 4) for k, v in after.items()}

    predictor = Sam2ImagePredictor.from_pretrained(out)
    saved = evaluate_coco(predictor, annotations, data / "images", num_clicks=5, progress=False)["miou"]
    assert saved[0] == pytest.approx(after["mIoU@1"], abs=1e-9)
    assert saved[-1] == pytest.approx(after["mIoU@5"], abs=1e-9)
    capsys.readouterr()
    assert main(["eval", "clicks", "--model", str(out), "--coco-json", str(annotations),
                 "--image-dir", str(data / "images")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"1-click mIoU: {100 * after['mIoU@1']:.1f}" in printed
    assert f"5-click mIoU: {100 * after['mIoU@5']:.1f}" in printed
    # What the Trainer logged before: the same model scored in training mode (no dynamic multimask selection).
    images = build_dataset(annotations, IMAGE_SIZE, 1, augment=False).videos
    assert image_click_miou(Sam2ImagePredictor(result.model.train()), images)["mIoU@5"] != after["mIoU@5"]


def test_video_metrics_in_the_log_and_card_equal_eval_vos(base_model, tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "davis", kind="davis", num_items=2, num_frames=4)
    out, predictions = tmp_path / "variant", tmp_path / "predictions"
    run = {**RUN, "recipe": FinetuneRecipe.named("fast", num_frames=4)}
    result = finetune(base_model, data, str(out), image_size=IMAGE_SIZE, eval_data=data, **run)
    after = result.metrics_after
    assert logged(result, "J&F")[-1] == after["J&F"]
    assert 0 < after["J"] < 1 and 0 < after["F"] < 1
    assert card_metrics(out) == {k: round(v, 4) for k, v in after.items()}

    capsys.readouterr()
    folders = ["--base-video-dir", str(data / "JPEGImages"), "--input-mask-dir", str(data / "Annotations")]
    assert main(["eval", "vos", "--model", str(out), *folders, "--output-mask-dir", str(predictions)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["J&F-Mean"])  # the DAVIS global table
    printed = dict(zip(lines[header].split(), map(float, lines[header + 1].split())))
    assert printed["J&F-Mean"] == round(after["J&F"], 3) and printed["J-Mean"] == round(after["J"], 3)
    summary = summarize(score_folder(data / "Annotations", predictions, progress=False))
    assert summary["J&F-Mean"] == pytest.approx(after["J&F"], abs=1e-12)
    # What the Trainer logged before: objects scored where they overlap (the predictor's defaults).
    clips = build_dataset(data, IMAGE_SIZE, 1, augment=False).videos
    assert video_jf(Sam2VideoPredictor(result.model, memory_policy="ram"), clips)["J&F"] != after["J&F"]


def test_model_card_is_a_public_page(base_model, tmp_path):
    data = make_synthetic_dataset(tmp_path / "my_images", kind="images", num_items=2)
    out = tmp_path / "my-variant"
    args = ["finetune", "--model", base_model, "--data", str(data), "--output-dir", str(out), "--eval-data",
            str(data), "--image-size", str(IMAGE_SIZE), "--recipe", "fast", "--max-steps", "1", "--use_cpu",
            "--save_strategy", "no", "--report_to", "none", "--lora", "mask_decoder", "--lora-rank", "4"]  # fmt: skip
    assert main(args) == 0
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert str(tmp_path) not in text and "/tmp" not in text  # no path of the training machine
    assert card.data.license == "apache-2.0"
    assert card.data.base_model is None  # a local .pt with no --base-model-id: named, not linked
    base_name = base_model.rsplit("/", 1)[-1]
    assert f"fine-tuned from `{base_name}` on `my_images`" in text
    assert text.splitlines()[text.splitlines().index("---", 1) + 2] == "# my-variant"
    for row in ("| image size | 256 |", "| LoRA rank | 4 |", "| LoRA targets | mask_decoder |", "| frozen | nothing |",
                "| learning rate (all but the image encoder) | 0.0001 |", "| batch size (total) | 1 |"):  # fmt: skip
        assert row in text, row
    assert re.search(r"Framework versions: sam2-hf [\d.]+, transformers [\d.]+, torch", text)
    assert f"--model {base_name} --data my_images --output-dir my-variant" in text
    recipe = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])  # the whole recipe, reusable
    assert FinetuneRecipe.from_dict(recipe) == FinetuneRecipe.fast()
    assert "## Limitations" in text and "sam2-hf eval clicks" in text

    linked = tmp_path / "linked"
    assert main([*args[:6], str(linked), *args[7:], "--base-model-id", "facebook/sam2.1-hiera-tiny"]) == 0
    card = ModelCard.load(linked / "README.md")
    assert card.data.base_model == "facebook/sam2.1-hiera-tiny"


def test_public_names_hide_local_paths(tmp_path):
    import datasets

    (tmp_path / "weights.pt").write_bytes(b"")
    assert public_name(str(tmp_path / "weights.pt")) == "weights.pt"
    assert public_name("facebook/sam2.1-hiera-tiny") == "facebook/sam2.1-hiera-tiny"
    assert public_name(str(tmp_path) + "/") == tmp_path.name
    assert public_name(datasets.Dataset.from_dict({"image": [0, 1]})) == "a datasets.Dataset of 2 rows"
    assert public_name((str(tmp_path / "weights.pt"), 3.0)) == "weights.pt"  # a --data source with its weight
    (tmp_path / "variant").mkdir()
    assert base_model_license(tmp_path / "variant") == "apache-2.0"  # no card at hand: Meta's release license
    (tmp_path / "variant" / "README.md").write_text("---\nlicense: mit\n---\n# a fine-tuned variant\n")
    assert base_model_license(tmp_path / "variant") == "mit"  # a base's own card wins
    assert base_model_license(str(tmp_path / "weights.pt")) == "apache-2.0"
    command = f"sam2-hf finetune --model {tmp_path}/weights.pt --output-dir={tmp_path}/out --data facebook/x"
    assert public_command(command) == "sam2-hf finetune --model weights.pt --output-dir=out --data facebook/x"
