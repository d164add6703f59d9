"""Parameter-efficient fine-tuning with peft's LoRA, injected into the model in place (no wrapper, so the
training step, Trainer and saving see the same `Sam2VideoModelForTraining`) and merged into plain weights
before the final save, so the result loads without peft."""

from __future__ import annotations

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


def add_lora(model: nn.Module, parts=DEFAULT_LORA_PARTS, r: int = 8, alpha: int = 16, dropout: float = 0.0) -> int:
    """Put LoRA adapters (rank `r`, scale `alpha / r`) on every `nn.Linear` of the chosen parts and freeze
    every other weight. parts: names from `LORA_PARTS`. -> the number of trainable parameters.
    Raises ValueError for an unknown part."""
    from peft import LoraConfig, inject_adapter_in_model

    unknown = sorted(set(parts) - set(LORA_PARTS))
    if unknown:
        raise ValueError(f"Unknown LoRA parts {unknown}; choose among {sorted(LORA_PARTS)}.")
    prefixes = tuple(LORA_PARTS[p] + "." for p in parts)
    targets = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.startswith(prefixes)]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
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
    return len(merged)
