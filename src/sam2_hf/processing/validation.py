"""Checks of model-level inputs (normalized pixel values, prompt tensors in model-input pixels) that
turn bad tensors into errors naming the problem, and the one reader of users' JSON files. User-level
prompts are checked by `prompts.Prompt`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .prompts import NOT_A_POINT, PADDING, check_boxes, check_labels, check_not_empty, warn_out_of_bounds


class NotJsonError(ValueError):
    """A file that is not JSON: `path`, and `reason` in plain words; the message is "<path>: <reason>."."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}.")
        self.path, self.reason = path, reason


def read_json_file(path):
    """The parsed content of a JSON file. Raises FileNotFoundError for a missing file and `NotJsonError` (a
    ValueError) naming the file and saying, in plain words, why it is not JSON (binary content, a folder, or
    where the syntax breaks)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotJsonError(path, "not a JSON file (binary content, not UTF-8 text)") from None
    except IsADirectoryError:
        raise NotJsonError(path, "a folder, not a JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise NotJsonError(path, f"not valid JSON ({where}: {error.msg.lower()})") from None


def check_pixel_values(pixel_values: torch.Tensor, image_size: int) -> None:
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
        raise ValueError(
            f"pixel_values must have shape (batch, 3, {image_size}, {image_size}), got {tuple(pixel_values.shape)}."
        )
    if tuple(pixel_values.shape[-2:]) != (image_size, image_size):
        raise ValueError(
            f"pixel_values must be {image_size}x{image_size} (the model's image_size); got "
            f"{tuple(pixel_values.shape[-2:])}. Use Sam2Processor to resize and normalize images."
        )
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be a float tensor (normalized), got {pixel_values.dtype}.")


def check_image_prompts(batch_size, points, labels, boxes, masks, image_size) -> int:
    """Checks the model-level prompt tensors of `Sam2Model.forward`; returns the prompts per image P.
    An empty one (a dimension of size 0) is an `EmptyPromptError` naming it."""
    tensors = {"input_points": points, "input_labels": labels, "input_boxes": boxes, "input_masks": masks}
    for name, tensor in tensors.items():
        check_not_empty(tensor, name, "Sam2Model")
    num_prompts = 1
    if points is not None:
        if points.ndim != 4 or points.shape[-1] != 2:
            raise ValueError(
                f"input_points must be (batch, objects, points, 2); got shape {tuple(points.shape)}. "
                "Sam2Processor builds it from nested lists."
            )
        if labels is None or tuple(labels.shape) != tuple(points.shape[:-1]):
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(
                f"input_labels must have shape {tuple(points.shape[:-1])} to match input_points; got {got}."
            )
        check_labels(labels)
        real = (labels != PADDING) & (labels != NOT_A_POINT)
        warn_out_of_bounds(points[real], image_size, image_size, "input_points (in model-input pixels)")
        num_prompts = points.shape[1]
        if points.shape[0] != batch_size:
            raise ValueError(f"input_points has {points.shape[0]} images but there are {batch_size}.")
    if boxes is not None:
        if boxes.ndim != 3:
            raise ValueError(f"input_boxes must be (batch, boxes, 4); got shape {tuple(boxes.shape)}.")
        check_boxes(boxes)
        if boxes.shape[0] != batch_size:
            raise ValueError(f"input_boxes has {boxes.shape[0]} images but there are {batch_size}.")
        if points is not None and boxes.shape[1] != num_prompts:
            raise ValueError(
                f"input_boxes has {boxes.shape[1]} boxes per image but input_points has {num_prompts} objects; "
                "give one box per object."
            )
        num_prompts = boxes.shape[1]
    bad_masks = masks is not None and (masks.ndim != 4 or masks.shape[0] != batch_size)
    if bad_masks or (masks is not None and masks.shape[1] not in (1, num_prompts)):
        raise ValueError(
            f"input_masks must be (batch, 1 or {num_prompts}, H, W) mask logits; got shape {tuple(masks.shape)}."
        )
    return num_prompts
