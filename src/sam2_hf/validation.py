"""Input checks that turn bad prompts and images into errors naming the problem."""

from __future__ import annotations

import torch

POINT_LABELS = (0, 1)  # negative / positive click
BOX_CORNER_LABELS = (2, 3)  # top-left / bottom-right corner
SPECIAL_LABELS = (-1, -10)  # "not a point" / batch padding


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


def check_labels(labels: torch.Tensor, allowed=POINT_LABELS + BOX_CORNER_LABELS + SPECIAL_LABELS) -> None:
    bad = labels[~torch.isin(labels, torch.tensor(allowed, device=labels.device, dtype=labels.dtype))]
    if bad.numel():
        raise ValueError(
            f"Point labels must be 1 (positive) or 0 (negative) (2/3 mark box corners, -1 'not a point', "
            f"-10 padding); got {sorted(set(bad.tolist()))}."
        )


def check_boxes(boxes: torch.Tensor) -> None:
    if boxes.shape[-1] != 4:
        raise ValueError(f"Boxes must be (..., 4) as x0, y0, x1, y1; got shape {tuple(boxes.shape)}.")
    flipped = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    if flipped.any():
        raise ValueError(f"Boxes must have x1 >= x0 and y1 >= y0; got {boxes[flipped].tolist()}.")


def check_in_bounds(coords: torch.Tensor, width: float, height: float, what: str = "Points") -> None:
    """coords (..., 2k) as x, y pairs must lie inside a width x height image."""
    xy = coords.reshape(-1, 2)
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if outside.any():
        raise ValueError(
            f"{what} outside the {int(width)}x{int(height)} image (x in [0, {int(width)}], y in [0, {int(height)}]): "
            f"{xy[outside].tolist()}."
        )


def check_image_prompts(batch_size, points, labels, boxes, masks, image_size) -> int:
    """Checks the model-level prompt tensors of `Sam2Model.forward`; returns the prompts per image P."""
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
        real = labels != -10
        check_in_bounds(points[real], image_size, image_size, "input_points (in model-input pixels)")
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
