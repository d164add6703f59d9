"""`CompiledBackend` ("compile"): the torch parts (backends/torch.py) with the model's compute methods compiled by
`torch.compile` (TorchInductor; on the CPU it needs a C++ compiler). Exact up to float32 reassociation (tested
against "torch", tests/test_export.py). Each method compiles on its first call (tens of seconds per part at 1024 px)
and again when an input's shape changes in a way its guards did not cover (the number of objects or memories; a
shape seen to change is then traced as dynamic, so a video compiles its memory attention twice, on its first two
tracked frames); the compiled code lives as long as the backend. The memory attention's tiled softmax stays eager
(`layers._attend_in_tiles`: its loop bound grows with the memory bank).
"""

from __future__ import annotations

import types

import torch

from ..models.modeling import Sam2Model
from .torch import TorchBackend

COMPILED_METHODS = ("encode_frame", "decode", "attend_memory_bank", "encode_memory")  # the seam's heavy calls
# Methods run as written but on the compiled view, so that the compiled methods they call are the ones run (memory
# selections are stacked into tensors eagerly: their sizes depend on the data).
REBOUND_METHODS = ("condition_on_memory",)


class CompiledMethods:
    """`model` seen through `torch.compile`: the `COMPILED_METHODS` it has are compiled, `REBOUND_METHODS` call
    them, everything else is the model's own (parameters, config, small modules), so the torch parts run unchanged
    on it."""

    def __init__(self, model: Sam2Model, **options):
        self.model = model
        for name in COMPILED_METHODS:
            if hasattr(model, name):
                setattr(self, name, torch.compile(getattr(model, name), **options))
        for name in REBOUND_METHODS:
            if hasattr(model, name):
                setattr(self, name, types.MethodType(getattr(type(model), name), self))

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class CompiledBackend(TorchBackend):
    """The four torch parts over `CompiledMethods(model, **options)`; `options` are `torch.compile`'s (e.g.
    `mode="max-autotune"`, `dynamic=True`). `model` stays the model (for `config`, `device`, `dtype`)."""

    def __init__(self, model: Sam2Model, **options):
        super().__init__(CompiledMethods(model, **options))
        self.model = model
