"""`sam2_hf.ultralytics`: Ultralytics' names in one import path (README, "Coming from Ultralytics").

    from sam2_hf.ultralytics import SAM, SAM2, SAM2VideoPredictor, Results, auto_annotate

The modules are `sam2_hf.tasks.ultralytics_api` (the models and the video predictor), `sam2_hf.predictors.
ultralytics_results` (Results) and `sam2_hf.tasks.annotate` (auto_annotate, which also takes Ultralytics'
keywords). `SAM2VideoPredictor` here is Ultralytics' class; `sam2_hf.SAM2VideoPredictor` is Meta's.
"""

from .predictors.ultralytics_results import Boxes, Masks, Results
from .tasks.annotate import auto_annotate
from .tasks.ultralytics_api import SAM, SAM2, SAM2VideoPredictor

__all__ = ["SAM", "SAM2", "Boxes", "Masks", "Results", "SAM2VideoPredictor", "auto_annotate"]
