"""`Sam2Processor`: images and prompts -> model inputs, masks -> original-size masks.

transformers' `Sam2Processor` (5.x), as a `ProcessorMixin` over this package's `Sam2ImageProcessor`:
the same construction from parts, call, output keys, shapes and dtypes, and the same
`processor_config.json`. Differences: pixels are resized as Meta's `SAM2Transforms` does (floats,
not uint8; `rescale_before_resize=False` gives transformers' arithmetic), prompts are validated with
errors that name the problem, and `post_process_masks` really fills holes and removes sprinkles.

    processor = Sam2Processor.from_pretrained("facebook/sam2.1-hiera-tiny")   # or Sam2Processor.for_image_size(1024)
    inputs = processor(images=image, input_points=[[[[500, 375]]]], input_labels=[[[1]]])
    outputs = model(**inputs)
    masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0]  # (P, M, H, W) bool

Prompt nesting (lists, numpy arrays or tensors):
    input_points  [image][object][point][x, y]   in original-image pixels
    input_labels  [image][object][point]         1 positive, 0 negative (2 / 3 box corners)
    input_boxes   [image][box][x0, y0, x1, y1]   in original-image pixels
Objects with fewer points (and images with fewer objects) are padded with `point_pad_value` (-10);
a point labelled -1 is padding too (transformers' convention). Padding points get label -10 in
`input_labels` (also when no labels were given, so that the model does not take them for clicks), and
the model leaves them out of its attention: a padding point changes no object's result (stock
transformers gives them a zero or "not a point" token that still changes the padded object's mask).
Boxes cannot be padded, so every image needs the same number of boxes. Points or boxes outside their
image are warned about, not refused, and used as given (as transformers and Meta do).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .image_processing import Sam2ImageProcessor, to_model_coords
from .mask_postprocessing import apply_non_overlapping_constraints as keep_one_object_per_pixel
from .mask_postprocessing import clean_masks, upscale_masks
from .prompts import NOT_A_POINT, PADDING, POSITIVE, Prompt, check_not_empty, warn_out_of_bounds


class Sam2Processor(ProcessorMixin):
    """Prepares images and prompts for `Sam2Model` and post-processes its masks (transformers'
    `ProcessorMixin`: built from its `image_processor`, saved and loaded as transformers' `Sam2Processor`).

    image_processor: a `Sam2ImageProcessor` (default: 1024 x 1024, Meta's float resize); target_size:
    the size S prompts are rescaled to (default: the image processor's height); point_pad_value: the
    label (and coordinates) of padding points. `Sam2Processor.for_image_size(S)` builds one for a
    model of another `config.image_size`.
    """

    def __init__(self, image_processor=None, target_size: int | None = None, point_pad_value: int = -10, **kwargs):
        super().__init__(image_processor if image_processor is not None else Sam2ImageProcessor(), **kwargs)
        self.target_size = int(target_size if target_size is not None else self.image_processor.size["height"])
        self.point_pad_value = point_pad_value

    @classmethod
    def for_image_size(cls, image_size: int, **kwargs) -> Sam2Processor:
        """A processor for a model whose `config.image_size` is `image_size` (images to S x S, masks S/4)."""
        return cls(Sam2ImageProcessor.for_image_size(image_size), **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """The image processor saved beside the processor, read as this package's `Sam2ImageProcessor`
        (transformers' auto classes would give the stock one)."""
        kwargs.pop("subfolder", None)
        return [Sam2ImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs)]

    @property
    def model_input_names(self) -> list[str]:
        """The keys an image call returns (transformers' contract): the image processor's, and original_sizes."""
        return [*self.image_processor.model_input_names, "original_sizes"]

    # --------------------------------------------------------------------------------- inputs
    def __call__(
        self,
        images=None,
        segmentation_maps=None,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        original_sizes=None,
        return_tensors=None,
        device=None,
        **image_kwargs,
    ) -> BatchFeature:
        """Images (one, a list of any sizes, or a (B, 3, H, W) batch) and/or prompts -> a `BatchFeature`:

        pixel_values (B, 3, S, S) float32, original_sizes (B, 2) int64 as [H, W] (with return_tensors="pt"),
        labels (B, S/4, S/4) int64 (the resized `segmentation_maps`, when given), input_points (B, P, K, 2) float32 in
        model-input pixels, input_labels (B, P, K) int64, input_boxes (B, P, 4) float32 in model-input pixels.
        Without images, `original_sizes` ([[H, W], ...]) tells how to rescale the prompts.
        image_kwargs: per-call options of `Sam2ImageProcessor` (size, do_resize, rescale_before_resize, ...).
        return_tensors: "pt" for torch tensors, "np" for numpy arrays; None (default, as transformers) leaves
        pixel_values and original_sizes as per-image lists (prompts are tensors). `device` moves the outputs there.
        """
        data = {}
        if images is not None:
            tensors = return_tensors if segmentation_maps is None else "pt"  # stock's label maps need "pt"
            pixels = self.image_processor(
                images, segmentation_maps=segmentation_maps, return_tensors=tensors, **image_kwargs
            )
            sizes = _as_sizes(pixels["original_sizes"])
            if original_sizes is not None and _as_sizes(original_sizes) != sizes:
                raise ValueError(
                    f"original_sizes {_as_sizes(original_sizes)} disagree with the images' sizes {sizes}; "
                    "pass original_sizes only without images."
                )
            data.update(pixels)
        elif segmentation_maps is not None or image_kwargs:
            raise ValueError(
                f"{['segmentation_maps'] if segmentation_maps is not None else sorted(image_kwargs)} need images."
            )
        elif original_sizes is not None:
            sizes = _as_sizes(original_sizes)
            data["original_sizes"] = [list(hw) for hw in sizes]
        else:
            raise ValueError("Either images or original_sizes must be provided.")
        data.update(self._prompt_tensors(input_points, input_labels, input_boxes, sizes))
        features = BatchFeature(data, tensor_type=return_tensors)
        return features.to(device) if device is not None else features

    def _prompt_tensors(self, input_points, input_labels, input_boxes, sizes) -> dict:
        """The nested prompts checked, padded and rescaled to model-input pixels (see `__call__`).
        An empty list, array or tensor at any level ([], [[]], [[[]]], shape (1, 0, 2), ...) is an
        `EmptyPromptError` naming the argument."""
        for name, value in (
            ("input_points", input_points),
            ("input_labels", input_labels),
            ("input_boxes", input_boxes),
        ):
            check_not_empty(value, name, "Sam2Processor")
        points = _nested(input_points, 4, "input_points", "[image][object][point][x, y]", 2)
        labels = _nested(input_labels, 3, "input_labels", "[image][object][point]")
        boxes = _nested(input_boxes, 3, "input_boxes", "[image][box][x0, y0, x1, y1]", 4)
        for name, prompt in (("input_points", points), ("input_labels", labels), ("input_boxes", boxes)):
            if prompt is not None and len(prompt) != len(sizes):
                raise ValueError(f"{name} has prompts for {len(prompt)} images but {len(sizes)} images were given.")
        if labels is not None and points is None:
            raise ValueError("input_labels were given without input_points.")
        data = {}
        if points is None and boxes is None:
            return data
        self._check_prompts(points, labels, boxes)
        if points is not None:
            padded_labels = self._padded_labels(points, labels)
            data["input_points"] = self._rescaled_points(points, sizes, padded_labels)
            if labels is not None or (padded_labels == PADDING).any():
                data["input_labels"] = padded_labels
        if boxes is not None:
            data["input_boxes"] = self._rescaled_boxes(boxes, sizes)
            if points is not None and data["input_points"].shape[1] != data["input_boxes"].shape[1]:
                raise ValueError(
                    f"input_boxes has {data['input_boxes'].shape[1]} boxes per image but input_points has "
                    f"{data['input_points'].shape[1]} objects; give one box per object."
                )
        return data

    def _check_prompts(self, points, labels, boxes) -> None:
        """Every object's clicks and box validated as one `Prompt` (padding points left out; empty lists
        were refused by `_prompt_tensors`)."""
        for i in range(len(points if points is not None else boxes)):
            objects = points[i] if points is not None else boxes[i]
            if labels is not None and len(labels[i]) != len(points[i]):
                raise ValueError(
                    f"Image {i} has {len(points[i])} objects in input_points but {len(labels[i])} in input_labels."
                )
            real_objects = 0
            for j in range(len(objects)):
                box = boxes[i][j] if boxes is not None and j < len(boxes[i]) else None
                clicks, click_labels = self._real_points(points, labels, i, j) if points is not None else (None, None)
                if clicks == [] and box is None:
                    continue  # an object made of padding points only
                try:
                    Prompt(obj_id=j, points=clicks or None, labels=click_labels or None, box=box)
                except ValueError as e:
                    raise ValueError(f"Image {i}: {e}") from None
                real_objects += 1
            if not real_objects:
                raise ValueError(
                    f"Image {i} has only padding points (label or coordinates {self.point_pad_value}): give a real one."
                )

    def _real_points(self, points, labels, i: int, j: int) -> tuple[list, list]:
        """Object j of image i: its clicks and labels (1 where labels are not given, as the model then
        assumes) without padding points."""
        obj_points = points[i][j]
        obj_labels = labels[i][j] if labels is not None else [None] * len(obj_points)
        if len(obj_points) != len(obj_labels):
            raise ValueError(f"Object {j} of image {i} has {len(obj_points)} points but {len(obj_labels)} labels.")
        real = [k for k, (xy, label) in enumerate(zip(obj_points, obj_labels)) if not self._is_padding(xy, label)]
        return [obj_points[k] for k in real], [POSITIVE if obj_labels[k] is None else obj_labels[k] for k in real]

    def _is_padding(self, xy, label) -> bool:
        """A padding point: its label is `point_pad_value` or -1 (transformers' "not a point"; without
        labels given: both coordinates are `point_pad_value`)."""
        pad = self.point_pad_value
        return label in (pad, NOT_A_POINT) if label is not None else xy[0] == pad and xy[1] == pad

    def _padded_labels(self, points, labels) -> torch.Tensor:
        """(B, P, K) int64 labels of the padded points: the model's padding label (-10, which it leaves out of
        attention) for every padding point (`_is_padding`) and for the slots `_pad` adds, 1 for points given
        without labels (as the model assumes), the given label otherwise."""

        def label_of(xy, label):
            return PADDING if self._is_padding(xy, label) else POSITIVE if label is None else label

        if labels is None:
            labels = [[[None] * len(obj) for obj in image] for image in points]
        labels = [[list(map(label_of, *obj)) for obj in zip(*image)] for image in zip(points, labels)]
        lengths = _max_lengths(points, 3)
        return torch.tensor(_pad(labels, lengths, PADDING), dtype=torch.int64).reshape(lengths)

    def _rescaled_points(self, points, sizes, labels: torch.Tensor) -> torch.Tensor:
        """Padded (B, P, K, 2) points (`point_pad_value` in added slots); all but padding rescaled from their
        image, and checked against it. labels: the padded (B, P, K) labels (`_padded_labels`)."""
        lengths = _max_lengths(points, 3) + [2]
        tensor = torch.tensor(_pad(points, lengths, self.point_pad_value), dtype=torch.float32).reshape(lengths)
        for i, (height, width) in enumerate(sizes):
            real = labels[i] != PADDING
            warn_out_of_bounds(tensor[i][real], width, height, f"input_points of image {i}")
            tensor[i][real] = to_model_coords(tensor[i][real], (height, width), self.target_size)
        return tensor

    def _rescaled_boxes(self, boxes, sizes) -> torch.Tensor:
        counts = {len(b) for b in boxes}
        if len(counts) > 1:
            raise ValueError(
                f"Images have different numbers of boxes ({[len(b) for b in boxes]}); boxes cannot be padded, "
                "so give every image the same number of boxes."
            )
        tensor = torch.tensor(boxes, dtype=torch.float32).reshape(len(boxes), counts.pop(), 4)
        for i, (height, width) in enumerate(sizes):
            warn_out_of_bounds(tensor[i], width, height, f"input_boxes of image {i}")
            tensor[i] = to_model_coords(tensor[i], (height, width), self.target_size)
        return tensor

    # --------------------------------------------------------------------------------- outputs
    def post_process_masks(
        self,
        masks,
        original_sizes,
        mask_threshold: float = 0.0,
        binarize: bool = True,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        apply_non_overlapping_constraints: bool = False,
    ) -> list[torch.Tensor]:
        """Low-resolution logits -> one (P, M, H, W) mask tensor per image at its original size.

        masks: (B, P, M, h, w) `pred_masks`, or a list of (P, M, h, w) tensors / arrays.
        Holes (background regions of <= max_hole_area low-res pixels) are filled and sprinkles
        (foreground regions of <= max_sprinkle_area) removed first, as Meta's image predictor does;
        then bilinear upscaling, the optional one-object-per-pixel constraint across the P objects,
        and `> mask_threshold` when `binarize` (else logits are returned).
        """
        if not all(isinstance(m, (torch.Tensor, np.ndarray)) for m in masks):
            raise TypeError("masks must be a (B, P, M, h, w) tensor or a list of (P, M, h, w) tensors or arrays.")
        sizes = _as_sizes(original_sizes)
        if len(masks) != len(sizes):
            raise ValueError(f"Got masks for {len(masks)} images but {len(sizes)} original sizes.")
        results = []
        for i, (image_masks, size) in enumerate(zip(masks, sizes)):
            image_masks = torch.as_tensor(image_masks)
            if image_masks.ndim != 4:
                raise ValueError(
                    f"The masks of image {i} must be (objects, masks, height, width); "
                    f"got shape {tuple(image_masks.shape)}."
                )
            logits = clean_masks(image_masks.float(), max_hole_area, max_sprinkle_area, mask_threshold)
            logits = upscale_masks(logits, size)
            if apply_non_overlapping_constraints:
                logits = keep_one_object_per_pixel(logits)
            results.append(logits > mask_threshold if binarize else logits)
        return results


def _as_sizes(original_sizes) -> list[tuple[int, int]]:
    """[[H, W], ...] (list, array or tensor) -> [(H, W), ...] of positive ints."""
    if isinstance(original_sizes, (torch.Tensor, np.ndarray)):
        original_sizes = original_sizes.tolist()
    sizes = [tuple(int(v) for v in hw) for hw in original_sizes]
    if any(len(hw) != 2 or min(hw) <= 0 for hw in sizes):
        raise ValueError(f"original_sizes must be [[height, width], ...] of positive sizes; got {original_sizes}.")
    return sizes


def _nested(data, depth: int, name: str, layout: str, coord_size: int | None = None):
    """A prompt given as nested lists / arrays / tensors -> nested lists, checked to be `depth` levels deep
    (`coord_size` numbers in each innermost list)."""
    if data is None:
        return None

    def convert(x, level):
        if isinstance(x, (torch.Tensor, np.ndarray)):
            x = x.tolist()
        if level == depth:
            if isinstance(x, bool) or not isinstance(x, numbers.Real):
                raise ValueError(
                    f"{name} must be nested {depth} levels deep as {layout}; found {x!r} at level {level}."
                )
            return x
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"{name} must be nested {depth} levels deep as {layout}; found {x!r} at level {level}.")
        if level == depth - 1 and coord_size is not None and len(x) != coord_size:
            raise ValueError(f"{name} must hold {coord_size} numbers per entry ({layout}); got {list(x)}.")
        return [convert(item, level + 1) for item in x]

    return convert(data, 0)


def _max_lengths(nested, depth: int) -> list[int]:
    """Largest list length at each of the first `depth` nesting levels (0 below empty lists)."""
    lengths, level = [], [nested]
    for _ in range(depth):
        lengths.append(max((len(x) for x in level), default=0))
        level = [item for x in level for item in x]
    return lengths


def _pad(nested, lengths: list[int], value):
    """Pad a nested list to `lengths` per level with `value` (a full missing subtree is all `value`)."""
    if not lengths:
        return nested
    if not isinstance(nested, list):  # a missing subtree
        return [_pad(value, lengths[1:], value) for _ in range(lengths[0])]
    return [_pad(x, lengths[1:], value) for x in nested] + [
        _pad(value, lengths[1:], value) for _ in range(lengths[0] - len(nested))
    ]
