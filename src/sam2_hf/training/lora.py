"""Parameter-efficient fine-tuning with peft's LoRA, injected into the model in place (no wrapper, so the
training step, Trainer and saving see the same `Sam2VideoModelForTraining`) and merged into plain weights
before the final save, so the result loads without peft. Checkpoints before that hold the adapters only, in
peft's format (`save_lora_adapter`): `PeftModel.from_pretrained(base_model, checkpoint)` loads them, and no
model class takes them for a whole model."""

from __future__ import annotations

import os

from torch import nn

# Parts of the model whose linear layers LoRA may adapt (module name prefixes).
LORA_PARTS = {
    "image_encoder": "vision_encoder",
    "memory_attention": "memory_attention",
    "memory_encoder": "memory_encoder",
    "mask_decoder": "mask_decoder",
    "prompt_encoder": "prompt_encoder",
}
DEFAULT_LORA_PARTS = ("memory_attention", "mask_decoder")
ADAPTER_NAME = "default"  # peft's name of a model's one adapter
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"  # peft's file name (peft.utils.SAFETENSORS_WEIGHTS_NAME)
PEFT_KEY_PREFIX = "base_model.model."  # adapter keys as `PeftModel.save_pretrained` writes them


def add_lora(
    model: nn.Module,
    parts=DEFAULT_LORA_PARTS,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    base_model: str | None = None,
) -> int:
    """Put LoRA adapters (rank `r`, scale `alpha / r`) on every `nn.Linear` of the chosen parts and freeze
    every other weight. parts: names from `LORA_PARTS`. base_model: the model's Hub id, folder or file, recorded
    as the adapters' base (peft's `base_model_name_or_path`; default the model's `name_or_path`): transformers
    loads an adapter folder as that base plus the adapters. -> the number of trainable parameters.
    Raises ValueError for an unknown part."""
    from peft import LoraConfig, inject_adapter_in_model

    unknown = sorted(set(parts) - set(LORA_PARTS))
    if unknown:
        raise ValueError(f"Unknown LoRA parts {unknown}; choose among {sorted(LORA_PARTS)}.")
    prefixes = tuple(LORA_PARTS[p] + "." for p in parts)
    targets = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.startswith(prefixes)]
    base_model = base_model or getattr(model, "name_or_path", None) or None
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, base_model_name_or_path=base_model
    )
    inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and put the plain layer back, so the state dict has the
    model's own keys again; every parameter becomes trainable again. -> the number of layers merged."""
    from peft.tuners.lora import LoraLayer

    merged = [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in merged:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.get_base_layer())
    model.requires_grad_(True)
    del model.peft_config
    return len(merged)


def lora_config(model: nn.Module):
    """The `peft.LoraConfig` of the adapters `add_lora` put on `model`, or None (none, or merged)."""
    return getattr(model, "peft_config", {}).get(ADAPTER_NAME)


def save_lora_adapter(model: nn.Module, directory: str) -> None:
    """Write the model's LoRA adapters in peft's format, as `PeftModel.save_pretrained`: adapter_config.json and
    adapter_model.safetensors (the lora_A / lora_B weights, keys prefixed "base_model.model.")."""
    from safetensors.torch import save_file

    weights = {PEFT_KEY_PREFIX + k: v.detach().contiguous() for k, v in _adapter_weights(model).items()}
    os.makedirs(directory, exist_ok=True)
    save_file(weights, os.path.join(directory, ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    lora_config(model).save_pretrained(directory)


def load_lora_adapter(model: nn.Module, directory: str) -> None:
    """Load adapters written by `save_lora_adapter` into the model's LoRA layers (`add_lora` with the same parts
    and rank). Raises ValueError when `directory` holds no adapter or one that does not fit the model's."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = os.path.join(directory, ADAPTER_WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise ValueError(
            f"{directory} holds no LoRA adapter ({ADAPTER_WEIGHTS_NAME}): it was not written by a LoRA run."
        )
    weights = {k.removeprefix(PEFT_KEY_PREFIX): v for k, v in load_file(path).items()}
    shapes = {k: v.shape for k, v in _adapter_weights(model).items()}
    if {k: v.shape for k, v in weights.items()} != shapes:
        raise ValueError(
            f"The LoRA adapter in {directory} does not fit the model's LoRA layers (other parts or rank): resume "
            "with the run's --lora parts and --lora-rank."
        )
    set_peft_model_state_dict(model, weights)


def _adapter_weights(model: nn.Module) -> dict:
    """The LoRA weights by peft's key (lora_A / lora_B, adapter name left out); the model's own weights are
    frozen, embeddings included."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, save_embedding_layers=False)
