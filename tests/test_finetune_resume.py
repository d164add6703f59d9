"""Runs you cannot lose (issue 19 A3): a resumed fine-tuning run equals the uninterrupted one, bare
`--resume_from_checkpoint` takes the last checkpoint, a finished output folder is not silently replaced,
Ctrl-C leaves a resume command, and LoRA checkpoints cannot be mistaken for a full model."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
import torch
import transformers
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments

from sam2_hf import Sam2VideoModel
from sam2_hf.cli import main
from sam2_hf.training import FinetuneRecipe, PromptSimulation, Sam2Trainer, Sam2VideoModelForTraining
from sam2_hf.training.data import build_dataset, make_synthetic_dataset
from sam2_hf.training.lora import add_lora, save_lora_adapter

IMAGE_SIZE = 128


class InterruptAfterSave(TrainerCallback):
    """Ctrl-C right after the checkpoint of step `step` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def base(reference_models):
    return reference_models("tiny", "2.1", IMAGE_SIZE)


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("images"), kind="images", num_items=2)


def quick_recipe() -> FinetuneRecipe:
    """Meta's prompt decisions (box or clicks, corrective clicks sometimes from the ground truth: the prompt
    generator is drawn every step) with two corrective clicks instead of seven, at the fast recipe's rates."""
    prompts = dataclasses.replace(PromptSimulation.meta_finetune(), num_correction_pt_per_frame=2)
    return dataclasses.replace(FinetuneRecipe.fast(), num_frames=1, prompt_simulation=prompts)


@pytest.fixture(scope="module")
def base_folder(base, tmp_path_factory):
    """The base model saved with save_pretrained (a base that transformers can load by name)."""
    folder = tmp_path_factory.mktemp("base")
    base.load().save_pretrained(folder)
    return folder


def train(base, data, out, max_steps, save_steps, resume=None, callbacks=(), lora=()) -> dict[str, torch.Tensor]:
    """`Sam2Trainer` on `data` (batch 1, augmented clips seeded per item and epoch), with LoRA (rank 4) on the
    `lora` parts if any; base: a reference or a saved folder. -> the final weights."""
    model = Sam2VideoModelForTraining.from_pretrained(getattr(base, "path", base), image_size=IMAGE_SIZE)
    if lora:
        torch.manual_seed(0)  # the adapters' initial values
        add_lora(model, lora, r=4)
    args = TrainingArguments(
        str(out), max_steps=max_steps, save_steps=save_steps, use_cpu=True, report_to="none", seed=0,
        per_device_train_batch_size=1, remove_unused_columns=False, lr_scheduler_type="cosine",
    )  # fmt: skip
    dataset = build_dataset(data, IMAGE_SIZE, 1, 2, augment=True, seed=0)
    trainer = Sam2Trainer(model, args, train_dataset=dataset, recipe=quick_recipe(), callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=resume)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resumed_run_equals_the_uninterrupted_run(base, two_images, tmp_path):
    """Interrupted after the checkpoint of step 3 (mid-way through the second epoch of two images), then
    resumed to step 4: the final weights are those of 4 uninterrupted steps (the resumed step trains on epoch 1's
    clip and draws the prompts the uninterrupted step drew). Without the prompt generator's saved state, the
    resumed run draws other prompts and ends elsewhere: the check can fail."""
    uninterrupted = train(base, two_images, tmp_path / "a", max_steps=4, save_steps=3)
    with pytest.raises(KeyboardInterrupt):
        train(base, two_images, tmp_path / "b", max_steps=4, save_steps=3, callbacks=[InterruptAfterSave(3)])
    checkpoint = tmp_path / "b" / "checkpoint-3"
    assert (checkpoint / "prompt_rng_state.json").is_file()
    resumed = train(base, two_images, tmp_path / "b", max_steps=4, save_steps=3, resume=str(checkpoint))
    initial = base.load().state_dict()
    changed = [k for k in uninterrupted if not torch.equal(uninterrupted[k], initial[k])]
    assert changed, "training changed no weight"
    torch.testing.assert_close(resumed, uninterrupted, rtol=1e-5, atol=1e-7)

    (checkpoint / "prompt_rng_state.json").unlink()  # a checkpoint without the prompt generator's state
    unrestored = train(base, two_images, tmp_path / "b", max_steps=4, save_steps=3, resume=str(checkpoint))
    assert any(not torch.allclose(unrestored[k], uninterrupted[k], rtol=1e-4, atol=1e-6) for k in changed)


def finetune_argv(base, data, out, *extra) -> list[str]:
    args = ["finetune", "--model", str(base.path), "--data", str(data), "--output-dir", str(out)]
    options = ["--image-size", str(IMAGE_SIZE), "--recipe", "fast", "--use_cpu", "--report_to", "none", "--seed", "0"]
    return [*args, *options, *extra]


def finetune_cli(base, data, out, *extra) -> int:
    return main(finetune_argv(base, data, out, *extra))


def test_ctrl_c_bare_resume_and_a_used_output_folder(base, two_images, tmp_path, capsys, monkeypatch):
    """Ctrl-C after the first checkpoint: exit 130 and one line with the resume command (the same command and a
    bare --resume_from_checkpoint), no traceback, the checkpoint kept. The same command again is refused
    (naming what the folder holds); the printed one resumes from the last checkpoint; a bare
    --resume_from_checkpoint with no checkpoint is a clear error; --overwrite_output_dir starts anew."""
    out = tmp_path / "run"
    run = ["--max-steps", "2", "--save_steps", "1"]
    with monkeypatch.context() as patch:
        init = Sam2Trainer.__init__

        def with_ctrl_c(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.add_callback(InterruptAfterSave(1))

        patch.setattr(Sam2Trainer, "__init__", with_ctrl_c)
        assert finetune_cli(base, two_images, out, *run) == 130
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam2-hf")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"resume from {out / 'checkpoint-1'} with: " in lines[0]
    command = shlex.split(lines[0].split(" with: ", 1)[1])
    assert command == ["sam2-hf", *finetune_argv(base, two_images, out, *run), "--resume_from_checkpoint"]
    assert (out / "checkpoint-1" / "model.safetensors").is_file() and not (out / "model.safetensors").exists()

    assert finetune_cli(base, two_images, out, *run) == 2
    assert (
        f"The output folder {out} is not empty (checkpoint-1/): pass --overwrite_output_dir" in capsys.readouterr().err
    )
    assert finetune_cli(base, two_images, tmp_path / "new", "--resume_from_checkpoint") == 2
    assert f"no checkpoint-N folder in {tmp_path / 'new'} to resume from" in capsys.readouterr().err

    resumed_from = []
    load_rng_state = Sam2Trainer._load_rng_state
    monkeypatch.setattr(
        Sam2Trainer, "_load_rng_state", lambda self, c: resumed_from.append(c) or load_rng_state(self, c)
    )
    assert main(command[1:]) == 0
    assert resumed_from == [str(out / "checkpoint-1")]
    assert (out / "checkpoint-2").is_dir() and (out / "model.safetensors").is_file()

    assert (
        finetune_cli(base, two_images, out, "--max-steps", "1", "--save_strategy", "no", "--overwrite_output_dir") == 0
    )
    assert not list(out.glob("checkpoint-*")) and (out / "model.safetensors").is_file()


def test_lora_checkpoints_hold_adapters_only_and_resume(base, base_folder, two_images, tmp_path):
    """A LoRA run's checkpoint holds its adapters in peft's format and nothing a model class loads as a whole
    model: stock transformers loads it as its base plus the adapters (no weight missing, the adapters' trained
    values), peft's `PeftModel.from_pretrained` too; with a base that transformers cannot load (a Meta .pt) it
    refuses. Resuming from it equals the uninterrupted LoRA run."""
    lora = ("mask_decoder",)
    uninterrupted = train(base_folder, two_images, tmp_path / "a", max_steps=2, save_steps=1, lora=lora)
    with pytest.raises(KeyboardInterrupt):
        train(base_folder, two_images, tmp_path / "b", 2, 1, callbacks=[InterruptAfterSave(1)], lora=lora)
    checkpoint = tmp_path / "b" / "checkpoint-1"
    names = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert not names & {"config.json", "model.safetensors"}, names
    adapters = load_file(checkpoint / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.any() for k, v in adapters.items())  # trained (lora_B starts at 0)

    stock, info = transformers.Sam2VideoModel.from_pretrained(checkpoint, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    stock_weights = stock.state_dict()
    for key, value in adapters.items():
        name = key.removeprefix("base_model.model.").replace(".weight", ".default.weight")
        assert torch.equal(stock_weights[name], value), name
    from peft import PeftModel

    peft_weights = PeftModel.from_pretrained(Sam2VideoModel.from_pretrained(base_folder), checkpoint).state_dict()
    for key, value in adapters.items():
        assert torch.equal(peft_weights[key.replace(".weight", ".default.weight")], value), key

    resumed = train(base_folder, two_images, tmp_path / "b", 2, 1, resume=str(checkpoint), lora=lora)
    torch.testing.assert_close(resumed, uninterrupted, rtol=1e-5, atol=1e-7)

    from_meta_file = base.load(Sam2VideoModelForTraining)
    add_lora(from_meta_file, lora, r=4, base_model=str(base.path))
    save_lora_adapter(from_meta_file, tmp_path / "c")
    with pytest.raises(OSError, match="not a valid JSON file"):
        transformers.Sam2VideoModel.from_pretrained(tmp_path / "c")
