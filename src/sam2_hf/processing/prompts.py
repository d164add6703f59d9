"""`Prompt`: the one representation of what a user tells SAM 2 about one object on one image or frame.

Every entry point builds a `Prompt`, so every input is validated here once and the same way: the
Meta-style image and video predictors, `Sam2Processor`, `Sam2Tracker` / `sam2-hf track`, and the Space.

    Prompt(frame=0, obj_id=1, points=[(210, 350), (250, 220)], labels=[1, 0])   # clicks
    Prompt(frame=0, obj_id=2, box=(300, 0, 500, 400))                           # a box (+ clicks)
    Prompt(frame=4, obj_id=3, mask=binary_mask)                                 # a mask, alone
    Prompt(frame=4, obj_id=3, mask=probabilities)                               # object where >= 0.5

Coordinates are pixels of the image or frame (x right, y down), or fractions of its width and height
in [0, 1] with `normalized=True`; coordinates outside the image are warned about (`OutOfImageWarning`)
and used as given, as Meta's and transformers' predictors use them. Point labels (the same values
as Meta's and transformers' models):
1 positive click, 0 negative click, 2 / 3 a box's top-left / bottom-right corner given as points.
Two more labels exist only inside model inputs, never in a `Prompt`: -1 "not a point" (the
placeholder the prompt encoder adds) and -10 padding of batched prompts with different point counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .image_processing import to_model_coords

NEGATIVE, POSITIVE = 0, 1  # clicks
BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 2, 3  # a box as two corner points (Meta's labels)
NOT_A_POINT = -1  # model input only: the placeholder point of prompts without a box
PADDING = -10  # model input only: padding of batched prompts (transformers' `point_pad_value`)
POINT_LABELS = (NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT)
MODEL_LABELS = POINT_LABELS + (NOT_A_POINT, PADDING)


@dataclass(frozen=True, eq=False)
class Prompt:
    """One object's prompts on one image or video frame, validated on construction.

    frame: frame index (None for a single image); obj_id: the object's id (any hashable; None for a
    single image). After construction the fields hold CPU tensors:
    points (K, 2) float32 as x, y and labels (K,) int64 (None without clicks), box (4,) float32 as
    x0, y0, x1, y1, mask (H, W) float32 as given, bool masks as 0 / 1 (a mask prompt goes alone; the object
    is where it is >= 0.5 at the model's input size, see `model_mask`, so a probability map or logits read
    as the references read them).
    normalized: coordinates are fractions of the width / height in [0, 1] instead of pixels.

    Accepted shapes: points (K, 2) or (1, K, 2), labels (K,) or (1, K), box (4,), (1, 4) or (2, 2),
    mask (H, W); lists, numpy arrays or tensors. Raises ValueError naming the field and the problem
    (wrong shape, labels not in `POINT_LABELS`, points without labels, NaN / inf, a flipped box,
    normalized coordinates outside [0, 1], a mask with points or a box), and `EmptyPromptError` for an
    empty field (`[]`, shape (0, 2), ...; None means "not given") or a prompt with nothing in it.
    """

    frame: int | None = None
    obj_id: Hashable = None
    points: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    box: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    normalized: bool = False

    def __post_init__(self):
        where = self._where()
        if self.frame is not None:
            if isinstance(self.frame, bool) or not isinstance(self.frame, (int, np.integer)):
                raise ValueError(f"A prompt's frame must be a frame index (an int); got {self.frame!r}.")
            object.__setattr__(self, "frame", int(self.frame))
        for name in ("points", "labels", "box", "mask"):
            check_not_empty(getattr(self, name), name, where)
        points, labels = _points_and_labels(self.points, self.labels, where)
        box = None if self.box is None else _box(self.box, where)
        mask = None if self.mask is None else _mask(self.mask, where)
        if mask is not None and (points is not None or box is not None):
            raise ValueError(f"{where}: a mask prompt cannot be combined with points or a box; give it alone.")
        if points is None and box is None and mask is None:
            raise EmptyPromptError(where, "the prompt")
        if self.normalized:
            for name, coords in (("points", points), ("box", box)):
                if coords is not None:
                    warn_out_of_bounds(coords, 1, 1, f"{where}: {name} (normalized [0, 1] coordinates)")
        for name, value in (("points", points), ("labels", labels), ("box", box), ("mask", mask)):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------ editing
    def with_point(self, x: float, y: float, label: int) -> Prompt:
        """This prompt with one more click."""
        if self.points is None:
            return replace(self, points=[(x, y)], labels=[label])
        return replace(self, points=[*self.points.tolist(), (x, y)], labels=[*self.labels.tolist(), label])

    def with_box(self, box) -> Prompt:
        """This prompt with its box replaced."""
        return replace(self, box=box)

    @property
    def num_points(self) -> int:
        return 0 if self.points is None else len(self.points)

    @property
    def clicks(self) -> list[tuple[tuple[float, float], int]]:
        """The clicks as [((x, y), label)] in plain Python numbers."""
        if self.points is None:
            return []
        return [((x, y), label) for (x, y), label in zip(self.points.tolist(), self.labels.tolist())]

    # ------------------------------------------------------------------------------ model input
    def model_points(self, height: int, width: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The clicks and box as the prompt encoder takes them, for an image of height x width pixels
        squashed to image_size x image_size (Meta's per-axis scaling).

        Returns coords (1, K', 2) float32 in model-input pixels (0..image_size) and labels (1, K')
        int64, the box corners first (labels 2, 3) as Meta orders them, then the clicks. Warns about
        pixel coordinates outside the image (x in [0, width], y in [0, height]); raises ValueError for
        a mask prompt (it has no points).
        """
        if self.mask is not None:
            raise ValueError(f"{self._where()}: a mask prompt has no points.")
        coords, labels = [], []
        if self.box is not None:
            coords.append(self.box.reshape(2, 2))
            labels.append(torch.tensor([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]))
        if self.points is not None:
            coords.append(self.points)
            labels.append(self.labels)
        if not self.normalized:
            for name, xy in zip(("box" if self.box is not None else "points", "points"), coords):
                warn_out_of_bounds(xy, width, height, f"{self._where()}: {name} (pixels)")
        xy = torch.cat(coords)
        xy = to_model_coords(xy, (height, width), image_size, normalized=self.normalized)
        return xy.unsqueeze(0), torch.cat(labels).unsqueeze(0)

    def model_mask(self, image_size: int, device=None) -> torch.Tensor:
        """The mask prompt as the model takes it: (1, 1, S, S) float32 0 / 1 for a model of image_size S, on `device`.

        The values as given are resized to S x S (antialiased bilinear) and the object is where the result is
        >= 0.5: exactly what Meta's `SAM2VideoPredictor.add_new_mask` and transformers'
        `Sam2VideoProcessor.process_new_mask_for_video_frame` do with a mask tensor of another size, so float
        masks (probabilities, logits) and binary ones read as there. Where they differ, one rule here holds for
        every container and size: both read a numpy array or a list as bool (any non-zero value is the object,
        so a probability map would prompt with the whole frame), and take a float tensor already S x S as it is
        (soft values, logits too) without the 0.5 threshold. Raises ValueError for a prompt without a mask.
        """
        if self.mask is None:
            raise ValueError(f"{self._where()}: the prompt has no mask.")
        mask = self.mask[None, None].to(device)
        if mask.shape[-2:] != (image_size, image_size):
            mask = F.interpolate(mask, size=(image_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return (mask >= 0.5).float()

    # ------------------------------------------------------------------------------ helpers
    def _where(self) -> str:
        parts = [f"object {self.obj_id!r}" if self.obj_id is not None else None]
        parts.append(f"frame {self.frame}" if self.frame is not None else None)
        return "Prompt for " + " on ".join(p for p in parts if p) if any(parts) else "Prompt"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        same = lambda a, b: (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        return (self.frame, self.obj_id, self.normalized) == (other.frame, other.obj_id, other.normalized) and all(
            same(getattr(self, name), getattr(other, name)) for name in ("points", "labels", "box", "mask")
        )

    __hash__ = None


class EmptyPromptError(ValueError):
    """An empty prompt: an argument holding points, labels, boxes, masks or prompts with no entries (`[]`,
    `[[[]]]`, an array of shape (0, 2), ...), or a prompt with none of them. Every entry point raises it before
    any work, naming the argument as it calls it (`name`); None is "not given", as in Meta's and transformers'
    APIs, and is never this error."""

    def __init__(self, where: str, name: str):
        self.name = name
        super().__init__(
            f"{where}: {name} is empty; give at least one point (with its label), box or mask (None means none given)."
        )


def check_not_empty(value, name: str, where: str) -> None:
    """Raise `EmptyPromptError` naming `name` if `value` (a list, tuple, numpy array or tensor, nested to any
    depth, e.g. [image][object][point][x, y]) has no entries at some level; None and scalars pass."""
    if _is_empty(value):
        raise EmptyPromptError(where, name)


def _is_empty(value) -> bool:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.ndim > 0 and 0 in value.shape
    if isinstance(value, (list, tuple)):
        return not value or any(_is_empty(item) for item in value)
    return False


def as_tensor(value, name: str, where: str, dtype=torch.float32) -> torch.Tensor:
    """A list / array / tensor -> a finite CPU tensor of `dtype`; ValueError naming `name` otherwise."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        try:
            tensor = torch.from_numpy(np.array(value, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {name} must be numbers; got {value!r} ({error}).") from None
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f"{where}: {name} contains NaN or infinite values.")
    return tensor.to(dtype) if dtype is not torch.bool else tensor != 0


def _points_and_labels(points, labels, where: str):
    """-> (K, 2) float32 points and (K,) int64 labels, or (None, None)."""
    if points is None and labels is None:
        return None, None
    if points is None or labels is None:
        raise ValueError(f"{where}: points and labels must be given together (one label per point).")
    points = as_tensor(points, "points", where)
    labels = as_tensor(labels, "labels", where, dtype=torch.float64)
    if points.ndim == 3 and points.shape[0] == 1:
        points = points[0]
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            f"{where}: points must be (K, 2) as x, y pairs (or (1, K, 2)); got shape {tuple(points.shape)}."
        )
    if labels.ndim == 2 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 1 or len(labels) != len(points):
        raise ValueError(
            f"{where}: labels must be ({len(points)},), one per point of points {tuple(points.shape)}; "
            f"got shape {tuple(labels.shape)}."
        )
    bad = sorted({v for v in labels.tolist() if v not in POINT_LABELS})
    if bad:
        raise ValueError(
            f"{where}: point labels must be 1 (positive) or 0 (negative), or 2 / 3 for box corners; got "
            f"{[int(v) if float(v).is_integer() else v for v in bad]}."
        )
    return points, labels.long()


def _box(box, where: str) -> torch.Tensor:
    """-> (4,) float32 x0, y0, x1, y1."""
    box = as_tensor(box, "box", where)
    if tuple(box.shape) not in ((4,), (1, 4), (2, 2)):
        hint = " (one box per prompt: give each box its own object)" if box.ndim == 2 and box.shape[-1] == 4 else ""
        raise ValueError(
            f"{where}: box must be 4 numbers x0, y0, x1, y1 (shape (4,), (1, 4) or (2, 2)); got shape "
            f"{tuple(box.shape)}{hint}."
        )
    box = box.reshape(4)
    check_boxes(box, where)
    return box


def _mask(mask, where: str) -> torch.Tensor:
    """-> (H, W) float32, the values as given (bool masks as 0 / 1; read by `Prompt.model_mask`)."""
    mask = as_tensor(mask, "mask", where)
    if mask.ndim != 2:
        raise ValueError(f"{where}: mask must be a non-empty 2-D (H, W) array; got shape {tuple(mask.shape)}.")
    return mask


def check_boxes(boxes: torch.Tensor, what: str = "Boxes") -> None:
    """boxes (..., 4) as x0, y0, x1, y1 with x1 >= x0 and y1 >= y0; ValueError otherwise."""
    if boxes.shape[-1] != 4:
        raise ValueError(f"{what}: boxes must be (..., 4) as x0, y0, x1, y1; got shape {tuple(boxes.shape)}.")
    flipped = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    if flipped.any():
        raise ValueError(f"{what}: a box must have x1 >= x0 and y1 >= y0; got {boxes[flipped].tolist()}.")


def warn_out_of_bounds(coords: torch.Tensor, width: float, height: float, what: str = "Points") -> None:
    """coords (..., 2k) as x, y pairs outside a width x height image get a warning naming them; they are
    used as given, as transformers and Meta's predictors do (the prompt encoder handles any position)."""
    xy = coords.reshape(-1, 2)
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if outside.any():
        warnings.warn(OutOfImageWarning(what, width, height, xy[outside].tolist()), stacklevel=3)


class OutOfImageWarning(UserWarning):
    """A point or box lies (partly) outside its image. `where` says which coordinates and the image's bounds."""

    def __init__(self, what: str, width: float, height: float, coordinates: list):
        self.where = (
            f"{what} outside the {width:g}x{height:g} image (x in [0, {width:g}], y in [0, {height:g}]): {coordinates}"
        )
        super().__init__(f"{self.where}; they are used as given.")


def check_labels(labels: torch.Tensor, allowed=MODEL_LABELS) -> None:
    """Model-input labels (any shape) must be in `allowed`; ValueError naming the others."""
    bad = labels[~torch.isin(labels, torch.tensor(allowed, device=labels.device, dtype=labels.dtype))]
    if bad.numel():
        raise ValueError(
            f"Point labels must be 1 (positive) or 0 (negative) (2/3 mark box corners, -1 'not a point', "
            f"-10 padding); got {sorted(set(bad.tolist()))}."
        )
