"""Recipe files (`--recipe FILE.yaml|FILE.json`): a base recipe with fields overridden, nested ones merged, every
mistake named; the command line reads them and the data options reach the dataset."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from sam2_hf import Sam2VideoProcessor
from sam2_hf.cli import main
from sam2_hf.training import FinetuneRecipe, PromptSimulation, Sam2Trainer, Sam2VideoModelForTraining
from sam2_hf.training import data as training_data
from sam2_hf.training.data import build_dataset, make_synthetic_dataset

RECIPE_YAML = """\
base: fast
num_frames: 4
sample_rate: 2
reverse_time_prob: 0.25
learning_rate: 3e-5        # YAML 1.1 reads this as text: still a number here
loss_weights:
  loss_mask: 10
prompt_simulation:
  prob_to_use_box_input_for_train: 0.0
  num_correction_pt_per_frame: 3
"""


def test_yaml_recipe_overrides_nested_fields_of_its_base(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE_YAML)
    fast = FinetuneRecipe.fast()
    expected = dataclasses.replace(
        fast,
        num_frames=4,
        sample_rate=2,
        reverse_time_prob=0.25,
        learning_rate=3e-5,
        loss_weights={"loss_mask": 10.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0},
        prompt_simulation=dataclasses.replace(
            PromptSimulation.meta_finetune(), prob_to_use_box_input_for_train=0.0, num_correction_pt_per_frame=3
        ),
    )
    recipe = FinetuneRecipe.load(path)
    assert recipe == expected
    assert recipe.max_grad_norm == fast.max_grad_norm == 1.0  # untouched fields keep the base's value
    assert recipe.prompt_simulation.prob_to_use_pt_input_for_train == 0.5  # nested: merged, not replaced
    assert recipe.loss().weight_dict["loss_mask"] == 10.0

    as_json = tmp_path / "recipe.json"
    as_json.write_text(json.dumps({"num_frames": 4, "prompt_simulation": {"num_correction_pt_per_frame": 3}}))
    meta = FinetuneRecipe.meta()
    assert FinetuneRecipe.load(as_json) == dataclasses.replace(
        meta, num_frames=4, prompt_simulation=dataclasses.replace(meta.prompt_simulation, num_correction_pt_per_frame=3)
    )
    assert FinetuneRecipe.load("fast", num_frames=2) == dataclasses.replace(fast, num_frames=2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("num_frame: 4", "recipe.yaml: unknown field 'num_frame'; did you mean 'num_frames'"),
        (
            "prompt_simulation: {prob_to_use_box_input_for_trian: 0.1}",
            "recipe.yaml.prompt_simulation: unknown field 'prob_to_use_box_input_for_trian'; did you mean "
            "'prob_to_use_box_input_for_train'",
        ),
        (
            "loss_weights: {loss_masks: 2}",
            "recipe.yaml.loss_weights: unknown field 'loss_masks'; did you mean 'loss_mask'",
        ),
        ("num_frames: 2.5", "recipe.yaml.num_frames: expected int, got 2.5 (float)"),
        ("freeze_image_encoder: 'yes'", "recipe.yaml.freeze_image_encoder: expected bool, got 'yes' (str)"),
        ("learning_rate: fast", "recipe.yaml.learning_rate: expected float, got 'fast' (str)"),
        ("reverse_time_prob: true", "recipe.yaml.reverse_time_prob: expected float, got True (bool)"),
        ("reverse_time_prob: 2", "recipe.yaml: reverse_time_prob is a probability (0 to 1), not 2.0"),
        ("base: slow", "recipe.yaml: base 'slow' is not a recipe"),
        ("prompt_simulation: 3", "recipe.yaml.prompt_simulation: expected a mapping of field names to values"),
        ("- num_frames: 4", "recipe.yaml: a recipe is a mapping of field names to values, not list"),
        ("num_frames: 4\nsample_rate: 2: 3", "recipe.yaml: not valid YAML (line 2, column 15): mapping values are not"),
    ],
)
def test_recipe_file_mistakes_are_named(tmp_path, content, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(content)
    with pytest.raises(ValueError) as error:
        FinetuneRecipe.load(path)
    assert str(error.value).startswith(message), str(error.value)


def test_recipe_source_that_is_neither_a_name_nor_a_file(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown recipe 'slow': expected one of \('meta', 'fast'\) or a recipe file"):
        FinetuneRecipe.load("slow")
    with pytest.raises(FileNotFoundError, match="No recipe file at"):
        FinetuneRecipe.load(tmp_path / "missing.yaml")


def test_cli_reads_the_recipe_file_and_its_data_options_reach_the_dataset(
    reference_models, tmp_path, monkeypatch, capsys
):
    """`--recipe FILE` drives the run: its sample_rate leaves 2 of a video's 4 annotated frames, fewer than its
    num_frames (the dataset's own check says so before any training), and its reverse_time_prob reaches
    `build_dataset`; a mistake in the file is one line, exit 2, with or without --check-data."""
    data = make_synthetic_dataset(tmp_path / "clips", kind="davis", num_items=1, num_frames=4, height=64, width=64)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("base: fast\nnum_frames: 3\nsample_rate: 2\nreverse_time_prob: 0.25\n")
    calls = []
    build_dataset = training_data.build_dataset

    def recorded_build_dataset(*args, **kwargs):
        calls.append(kwargs)
        return build_dataset(*args, **kwargs)

    monkeypatch.setattr(training_data, "build_dataset", recorded_build_dataset)
    model = str(reference_models("tiny", "2.1", 128).path)
    args = ["finetune", "--model", model, "--data", str(data), "--output-dir", str(tmp_path / "out"), "--use_cpu"]
    assert main([*args, "--image-size", "128", "--recipe", str(recipe)]) == 2
    assert "2 annotated frames (after sample_rate 2), fewer than num_frames=3" in capsys.readouterr().err
    assert calls[0]["reverse_time_prob"] == 0.25 and calls[0]["sample_rate"] == 2
    assert not (tmp_path / "out").exists()

    recipe.write_text("num_frams: 3\n")
    for extra in ([], ["--check-data"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--recipe", str(recipe), *extra])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
        assert f"--recipe {recipe}: recipe.yaml: unknown field 'num_frams'; did you mean 'num_frames'?" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without an accelerator (CPU bf16)")
def test_readme_python_example_with_bf16_runs_on_the_cpu(reference_models, tmp_path):
    """README's fine-tuning example as written (`bf16=True`, no device option) at a tiny size: on a machine without
    an accelerator it trains one step under bf16 autocast on the CPU (transformers alone refuses: "Your setup
    doesn't support bf16/gpu") and the weights stay fp32, finite and trained."""
    size = 128
    model = reference_models("tiny", "2.1", size).load(Sam2VideoModelForTraining)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = FinetuneRecipe.fast()
    train = build_dataset(make_synthetic_dataset(tmp_path / "images", num_items=1), image_size=size, num_frames=1)
    args = recipe.training_arguments(str(tmp_path / "out"), max_steps=1, bf16=True, save_strategy="no")
    assert args.use_cpu and args.bf16
    trainer = Sam2Trainer(
        model, args, train_dataset=train, recipe=recipe, processor=Sam2VideoProcessor.for_image_size(size)
    )
    dtypes = set()
    model.mask_decoder.register_forward_hook(lambda module, inputs, output: dtypes.add(output.iou_scores.dtype))
    assert math.isfinite(trainer.train().training_loss)
    assert torch.bfloat16 in dtypes  # the step ran under bf16 autocast
    weights = model.state_dict()
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    assert any(not torch.equal(weights[k], before[k]) for k in before)


def test_cli_bf16_without_use_cpu_gets_the_same_rule_as_the_python_api(tmp_path):
    """`sam2-hf finetune --bf16` on a machine without an accelerator trains with bf16 autocast on the CPU, as
    `FinetuneRecipe.training_arguments(bf16=True)` does (transformers alone refuses: 'use_cpu')."""
    from sam2_hf.cli import build_parser
    from sam2_hf.cli.finetune import training_arguments_from
    from sam2_hf.training.recipe import bf16_needs_cpu

    argv = ["finetune", "--data", "unused", "--output-dir", str(tmp_path / "out"), "--bf16"]
    values = training_arguments_from(build_parser().parse_args(argv))
    assert values["bf16"] is True
    assert values.get("use_cpu", False) == bf16_needs_cpu() == (not torch.cuda.is_available())
    python_api = FinetuneRecipe.fast().training_arguments(str(tmp_path / "out"), bf16=True)
    assert python_api.use_cpu == values.get("use_cpu", False)
