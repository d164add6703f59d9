"""`sam2_hf.prompts`: the import path README documents for the prompt type, its errors and label constants.

The module itself is `sam2_hf.processing.prompts`; this path stays for users (tests/test_readme.py imports
through it).
"""

from .processing.prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    NEGATIVE,
    POSITIVE,
    EmptyPromptError,
    OutOfImageWarning,
    Prompt,
)

__all__ = [
    "BOX_BOTTOM_RIGHT",
    "BOX_TOP_LEFT",
    "NEGATIVE",
    "POSITIVE",
    "EmptyPromptError",
    "OutOfImageWarning",
    "Prompt",
]
