"""`sam2_hf.build_sam`: Meta's `sam2.build_sam` path (README's "Running Meta's scripts" table and
`sam2_hf.build_sam.OVERRIDES`); the module is `sam2_hf.predictors.build_sam`. tests/test_readme.py imports
through this path."""

from .predictors.build_sam import (
    HF_MODEL_ID_TO_FILENAMES,
    OVERRIDES,
    build_sam2,
    build_sam2_hf,
    build_sam2_video_predictor,
    build_sam2_video_predictor_hf,
)

__all__ = [
    "HF_MODEL_ID_TO_FILENAMES",
    "OVERRIDES",
    "build_sam2",
    "build_sam2_hf",
    "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf",
]
