"""Gradient checkpointing of the training step (`TrainingArguments(gradient_checkpointing=True)`): the Hiera blocks
and memory-attention layers are recomputed in the backward pass, which gives the same gradients with fewer
activations kept."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import transformers.modeling_utils

from sam2_hf import Sam2VideoProcessor
from sam2_hf.training import FinetuneRecipe, PromptSimulation, Sam2Trainer, Sam2VideoModelForTraining
from sam2_hf.training.data import build_dataset, collate_clips, make_synthetic_dataset
from sam2_hf.training.prompting import draw_clip_prompts

IMAGE_SIZE = 128


@pytest.fixture
def checkpoint_calls(monkeypatch):
    """The calls of `torch.utils.checkpoint.checkpoint` made through transformers' checkpointing (one per layer
    call), counted."""
    calls = []
    checkpoint = transformers.modeling_utils.checkpoint

    def counted(function, *args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counted)
    return calls


def enable_checkpointing(model):
    with warnings.catch_warnings():  # transformers >= 5.x: `activation_checkpointing_enable`, the old name stays
        warnings.simplefilter("ignore", FutureWarning)
        model.gradient_checkpointing_enable()


def test_checkpointed_step_gives_the_same_gradients_with_fewer_activations(
    reference_models, tmp_path, checkpoint_calls
):
    """A 2-frame clip of 2 objects, clicks and 2 corrective clicks on frame 0, frame 1 from memory: every
    parameter's gradient is the same with checkpointing, each Hiera block and memory-attention layer runs
    checkpointed (non-reentrant), and the activations kept for the backward pass shrink."""
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining).train()
    model.set_prompt_simulation(PromptSimulation(prob_to_use_pt_input_for_train=1.0, num_correction_pt_per_frame=2))
    data = make_synthetic_dataset(tmp_path, kind="davis", num_items=1, num_frames=2, height=64, width=64)
    batch = collate_clips([build_dataset(data, IMAGE_SIZE, num_frames=2, max_num_objects=2, augment=False)[0]])
    assert batch["masks"].shape[1] == 2 and batch["masks"].any()
    prompts = draw_clip_prompts(model.prompt_simulation, batch["masks"], True, model.prompt_rng)
    loss_fn = FinetuneRecipe.meta().loss()

    def step():
        """(gradients by parameter name, bytes saved for the backward pass outside checkpoints)."""
        model.zero_grad()
        saved = []
        torch.manual_seed(0)  # the corrective clicks' positions
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.nbytes) or t, lambda t: t):
            loss = loss_fn(model(**batch, prompts=prompts), batch["masks"])["core_loss"]
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, sum(saved)

    plain, plain_bytes = step()
    assert checkpoint_calls == []
    enable_checkpointing(model)
    checkpointed, checkpointed_bytes = step()

    layers = len(model.vision_encoder.backbone.blocks) + len(model.memory_attention.layers)  # 1 frame from memory
    assert checkpoint_calls == [False] * layers
    assert plain.keys() == checkpointed.keys() and len(plain) > 400
    assert any(g.abs().sum() > 0 for n, g in plain.items() if n.startswith("memory_attention."))
    for name, gradient in plain.items():
        torch.testing.assert_close(checkpointed[name], gradient, msg=name)
    assert checkpointed_bytes < 0.5 * plain_bytes, (checkpointed_bytes, plain_bytes)


def test_trainer_with_gradient_checkpointing_runs_checkpointed(reference_models, tmp_path, checkpoint_calls):
    """`TrainingArguments(gradient_checkpointing=True)` (transformers refuses it for a model that does not
    support it) trains a step with the layers checkpointed."""
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining)
    recipe = FinetuneRecipe.fast()
    train = build_dataset(make_synthetic_dataset(tmp_path / "images", num_items=1), IMAGE_SIZE, num_frames=1)
    processor = Sam2VideoProcessor.for_image_size(IMAGE_SIZE)
    with warnings.catch_warnings():  # transformers >= 5.x: `activation_checkpointing`, the old name stays
        warnings.simplefilter("ignore", FutureWarning)
        args = recipe.training_arguments(
            str(tmp_path / "out"), max_steps=1, gradient_checkpointing=True, save_strategy="no", use_cpu=True
        )
        trainer = Sam2Trainer(model, args, train_dataset=train, recipe=recipe, processor=processor)
        assert math.isfinite(trainer.train().training_loss)
    assert model.vision_encoder.backbone.blocks[0].gradient_checkpointing
    assert checkpoint_calls == [False] * len(model.vision_encoder.backbone.blocks)  # one image: no memory
