"""SAM 2 / 2.1 (Segment Anything Model 2) for images and video, as transformers models."""

from .models.configuration import (
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2MaskDecoderConfig,
    Sam2PromptEncoderConfig,
    Sam2VideoConfig,
    Sam2VideoMaskDecoderConfig,
    Sam2VideoPromptEncoderConfig,
    Sam2VisionConfig,
)
from .models.modeling import (
    Sam2HieraDetModel,
    Sam2Model,
    Sam2PreTrainedModel,
    Sam2VideoModel,
    Sam2VideoPreTrainedModel,
    Sam2VisionModel,
)
from .models.outputs import Sam2FrameFeatures, Sam2FramePrediction, Sam2ImageSegmentationOutput
from .predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from .predictors.image_predictor import Sam2ImagePredictor
from .predictors.inference_session import Sam2VideoInferenceSession, Sam2VideoSegmentationOutput
from .predictors.ultralytics_results import Results
from .predictors.video_predictor import Sam2VideoPredictor
from .predictors.video_processor import Sam2VideoProcessor, Sam2VideoVideoProcessor
from .processing.image_processing import Sam2ImageProcessor
from .processing.processor import Sam2Processor
from .processing.prompts import Prompt
from .tasks.annotate import auto_annotate
from .tasks.tracker import Masklets, Sam2Tracker, TrackingError
from .tasks.ultralytics_api import SAM, SAM2

__version__ = "0.1.0"

# Meta's class names (sam2.sam2_image_predictor.SAM2ImagePredictor, sam2.sam2_video_predictor.SAM2VideoPredictor,
# sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator),
# so `from sam2_hf import SAM2ImagePredictor` replaces Meta's import; builders: `sam2_hf.build_sam`.
SAM2AutomaticMaskGenerator = Sam2AutomaticMaskGenerator
SAM2ImagePredictor = Sam2ImagePredictor
SAM2VideoPredictor = Sam2VideoPredictor

__all__ = [
    "SAM",
    "SAM2",
    "Masklets",
    "Prompt",
    "Results",
    "SAM2AutomaticMaskGenerator",
    "SAM2ImagePredictor",
    "SAM2VideoPredictor",
    "Sam2AutomaticMaskGenerator",
    "Sam2Config",
    "Sam2FrameFeatures",
    "Sam2FramePrediction",
    "Sam2HieraDetConfig",
    "Sam2HieraDetModel",
    "Sam2ImagePredictor",
    "Sam2ImageProcessor",
    "Sam2ImageSegmentationOutput",
    "Sam2MaskDecoderConfig",
    "Sam2Model",
    "Sam2PreTrainedModel",
    "Sam2Processor",
    "Sam2PromptEncoderConfig",
    "Sam2Tracker",
    "Sam2VideoConfig",
    "Sam2VideoInferenceSession",
    "Sam2VideoMaskDecoderConfig",
    "Sam2VideoModel",
    "Sam2VideoPreTrainedModel",
    "Sam2VideoPredictor",
    "Sam2VideoProcessor",
    "Sam2VideoPromptEncoderConfig",
    "Sam2VideoSegmentationOutput",
    "Sam2VideoVideoProcessor",
    "Sam2VisionConfig",
    "Sam2VisionModel",
    "TrackingError",
    "auto_annotate",
]
