"""Fine-tuning SAM 2: data, training step, losses, Trainer loop."""

from .losses import MultiStepMultiMasksAndIous
from .model import Sam2VideoModelForTraining
from .prompting import ClipPrompts, PromptSimulation
from .recipe import FinetuneRecipe
from .trainer import Sam2Trainer

# Meta's class name (training.model.sam2.SAM2Train).
SAM2Train = Sam2VideoModelForTraining

__all__ = [
    "ClipPrompts",
    "FinetuneRecipe",
    "MultiStepMultiMasksAndIous",
    "PromptSimulation",
    "SAM2Train",
    "Sam2Trainer",
    "Sam2VideoModelForTraining",
]
