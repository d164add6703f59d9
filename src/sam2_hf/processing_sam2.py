"""`Sam2Processor`: images and prompts -> model inputs, masks -> original-size masks.

A drop-in for transformers' `Sam2Processor` (5.x): the same call, the same output keys, shapes and
dtypes, the same `processor_config.json`. Differences: pixels are processed exactly as Meta's
`SAM2Transforms` (no torchvision needed), prompts are validated with errors that name the problem,
and `post_process_masks` really fills holes and removes sprinkles.

    processor = Sam2Processor.from_pretrained("facebook/sam2.1-hiera-tiny")   # or Sam2Processor(image_size=1024)
    inputs = processor(images=image, input_points=[[[[500, 375]]]], input_labels=[[[1]]])
    outputs = model(**inputs)
    masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0]  # (P, M, H, W) bool

Prompt nesting (lists, numpy arrays or tensors):
    input_points  [image][object][point][x, y]   in original-image pixels
    input_labels  [image][object][point]         1 positive, 0 negative
    input_boxes   [image][box][x0, y0, x1, y1]   in original-image pixels
Objects with fewer points (and images with fewer objects) are padded with `point_pad_value` (-10);
boxes cannot be padded, so every image needs the same number of boxes.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile

import numpy as np
import torch
from transformers import BatchFeature

from .image_processing import IMAGENET_MEAN, IMAGENET_STD, preprocess_images, to_model_coords
from .mask_postprocessing import apply_non_overlapping_constraints as keep_one_object_per_pixel
from .mask_postprocessing import clean_masks, upscale_masks
from .prompts import POSITIVE, Prompt, check_in_bounds

PROCESSOR_CONFIG_NAME = "processor_config.json"  # transformers 5.x
LEGACY_CONFIG_NAME = "preprocessor_config.json"  # transformers 4.x / older Hub repos
BILINEAR = 2  # PIL.Image.Resampling.BILINEAR, as transformers writes `resample`


class Sam2Processor:
    """Prepares images and prompts for `Sam2Model` and post-processes its masks.

    image_size: the model's input size S (`model.config.image_size`); images are squashed to S x S
    and prompt coordinates rescaled per axis to 0..S.
    """

    def __init__(
        self,
        image_size: int = 1024,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        point_pad_value: int = -10,
    ):
        self.image_size = int(image_size)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.point_pad_value = point_pad_value

    @property
    def target_size(self) -> int:
        """transformers' name for the size prompts are rescaled to."""
        return self.image_size

    def __repr__(self) -> str:
        return (
            f"Sam2Processor(image_size={self.image_size}, image_mean={self.image_mean}, "
            f"image_std={self.image_std}, point_pad_value={self.point_pad_value})"
        )

    # --------------------------------------------------------------------------------- inputs
    def __call__(
        self,
        images=None,
        segmentation_maps=None,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        original_sizes=None,
        return_tensors="pt",
        device=None,
    ) -> BatchFeature:
        """Images (one, or a list of any sizes) and/or prompts -> a `BatchFeature` of tensors:

        pixel_values (B, 3, S, S) float32, original_sizes (B, 2) int64 as [H, W],
        input_points (B, P, K, 2) float32 in model-input pixels, input_labels (B, P, K) int64,
        input_boxes (B, P, 4) float32 in model-input pixels.
        Without images, `original_sizes` ([[H, W], ...]) tells how to rescale the prompts.
        `device` moves the outputs there (as transformers' `device=` does).
        """
        if segmentation_maps is not None:
            raise ValueError("segmentation_maps (training labels) are not supported by this processor.")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"Only PyTorch tensors are returned (return_tensors='pt'); got {return_tensors!r}.")
        data = {}
        if images is not None:
            data["pixel_values"], sizes = preprocess_images(images, self.image_size, self.image_mean, self.image_std)
            if original_sizes is not None and _as_sizes(original_sizes) != sizes:
                raise ValueError(
                    f"original_sizes {_as_sizes(original_sizes)} disagree with the images' sizes {sizes}; "
                    "pass original_sizes only without images."
                )
        elif original_sizes is not None:
            sizes = _as_sizes(original_sizes)
        else:
            raise ValueError("Either images or original_sizes must be provided.")
        data["original_sizes"] = torch.tensor(sizes, dtype=torch.int64)

        points = _nested(input_points, 4, "input_points", "[image][object][point][x, y]", 2)
        labels = _nested(input_labels, 3, "input_labels", "[image][object][point]")
        boxes = _nested(input_boxes, 3, "input_boxes", "[image][box][x0, y0, x1, y1]", 4)
        for name, prompt in (("input_points", points), ("input_labels", labels), ("input_boxes", boxes)):
            if prompt is not None and len(prompt) != len(sizes):
                raise ValueError(f"{name} has prompts for {len(prompt)} images but {len(sizes)} images were given.")
        if labels is not None and points is None:
            raise ValueError("input_labels were given without input_points.")
        if points is not None or boxes is not None:
            self._check_prompts(points, labels, boxes)
        if points is not None:
            padded_labels = None
            if labels is not None:
                lengths = _max_lengths(labels, 3)
                padded = _pad(labels, lengths, self.point_pad_value)
                padded_labels = torch.tensor(padded, dtype=torch.int64).reshape(lengths)
            data["input_points"] = self._rescaled_points(points, sizes, padded_labels)
            if padded_labels is not None:
                data["input_labels"] = padded_labels
        if boxes is not None:
            data["input_boxes"] = self._rescaled_boxes(boxes, sizes)
            if points is not None and data["input_points"].shape[1] != data["input_boxes"].shape[1]:
                raise ValueError(
                    f"input_boxes has {data['input_boxes'].shape[1]} boxes per image but input_points has "
                    f"{data['input_points'].shape[1]} objects; give one box per object."
                )
        features = BatchFeature(data)
        return features.to(device) if device is not None else features

    def _check_prompts(self, points, labels, boxes) -> None:
        """Every object's clicks and box validated as one `Prompt` (padding points left out); empty
        lists are errors that name the image and object."""
        for i in range(len(points if points is not None else boxes)):
            objects = points[i] if points is not None else boxes[i]
            if not objects:
                name = "input_points" if points is not None else "input_boxes"
                raise ValueError(f"Image {i} has an empty list of prompts in {name}: give at least one object.")
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
                    Prompt(obj_id=j, points=clicks, labels=click_labels, box=box)
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
        if not obj_points:
            raise ValueError(f"Object {j} of image {i} has no points in input_points: give at least one point.")
        if len(obj_points) != len(obj_labels):
            raise ValueError(f"Object {j} of image {i} has {len(obj_points)} points but {len(obj_labels)} labels.")
        real = [k for k, (xy, label) in enumerate(zip(obj_points, obj_labels)) if not self._is_padding(xy, label)]
        return [obj_points[k] for k in real], [POSITIVE if obj_labels[k] is None else obj_labels[k] for k in real]

    def _is_padding(self, xy, label) -> bool:
        """A padding point: its label is `point_pad_value` (without labels given: both coordinates are)."""
        pad = self.point_pad_value
        return label == pad if label is not None else xy[0] == pad and xy[1] == pad

    def _rescaled_points(self, points, sizes, labels: torch.Tensor | None) -> torch.Tensor:
        """Padded (B, P, K, 2) points, the real ones (see `_is_padding`; labels: the padded (B, P, K) labels)
        checked against and rescaled from their image."""
        pad = self.point_pad_value
        lengths = _max_lengths(points, 3) + [2]
        tensor = torch.tensor(_pad(points, lengths, pad), dtype=torch.float32).reshape(lengths)
        for i, (height, width) in enumerate(sizes):
            real = labels[i] != pad if labels is not None else (tensor[i] != pad).all(dim=-1)
            check_in_bounds(tensor[i][real], width, height, f"input_points of image {i}")
            tensor[i][real] = to_model_coords(tensor[i][real], (height, width), self.image_size)
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
            check_in_bounds(tensor[i], width, height, f"input_boxes of image {i}")
            tensor[i] = to_model_coords(tensor[i], (height, width), self.image_size)
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

    # ------------------------------------------------------------------------------ save / load
    def to_dict(self) -> dict:
        """The `processor_config.json` content, in transformers 5.x layout."""
        s = self.image_size
        return {
            "image_processor": {
                "do_convert_rgb": True,
                "do_normalize": True,
                "do_rescale": True,
                "do_resize": True,
                "image_mean": self.image_mean,
                "image_processor_type": "Sam2ImageProcessor",
                "image_std": self.image_std,
                "mask_size": {"height": s // 4, "width": s // 4},
                "resample": BILINEAR,
                "rescale_factor": 1 / 255,
                "size": {"height": s, "width": s},
            },
            "point_pad_value": self.point_pad_value,
            "processor_class": "Sam2Processor",
            "target_size": s,
        }

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> list[str]:
        """Write `processor_config.json` (loadable by transformers' `Sam2Processor.from_pretrained`)."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, PROCESSOR_CONFIG_NAME)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        if push_to_hub:
            self.push_to_hub(kwargs.pop("repo_id", os.path.basename(os.path.abspath(save_directory))), **kwargs)
        return [path]

    def push_to_hub(self, repo_id: str, commit_message: str = "Upload processor", private=None, token=None, **kwargs):
        """Save to a temporary folder and upload it to the Hub repo `repo_id` (created if needed)."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message, **kwargs)

    @classmethod
    def from_dict(cls, config: dict, **overrides) -> Sam2Processor:
        """From a `processor_config.json` (nested "image_processor") or a legacy flat
        `preprocessor_config.json` dict; keyword arguments override what it says."""
        image_config = config.get("image_processor", config)
        for flag in ("do_resize", "do_rescale", "do_normalize"):
            if image_config.get(flag, True) is False:
                raise ValueError(f"{flag}=False is not supported: SAM 2 always resizes, rescales and normalizes.")
        rescale = image_config.get("rescale_factor", 1 / 255)
        if abs(rescale - 1 / 255) > 1e-12:
            raise ValueError(f"rescale_factor must be 1/255; the config says {rescale}.")
        size = image_config.get("size", {"height": 1024, "width": 1024})
        if not isinstance(size, dict) or size.get("height") != size.get("width") or size.get("height") is None:
            raise ValueError(f"The image size must be a square {{'height': S, 'width': S}}; the config says {size}.")
        target_size = config.get("target_size")
        if target_size is not None and target_size != size["height"]:
            raise ValueError(f"target_size {target_size} differs from the image size {size['height']}; not supported.")
        kwargs = {
            "image_size": size["height"],
            "image_mean": image_config.get("image_mean", IMAGENET_MEAN),
            "image_std": image_config.get("image_std", IMAGENET_STD),
            "point_pad_value": config.get("point_pad_value", image_config.get("point_pad_value", -10)),
        }
        return cls(**{**kwargs, **overrides})

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        revision=None,
        cache_dir=None,
        token=None,
        local_files_only=False,
        **overrides,
    ) -> Sam2Processor:
        """From a folder or Hub repo holding `processor_config.json` or the older `preprocessor_config.json`."""
        source = os.fspath(pretrained_model_name_or_path)
        return cls.from_dict(_read_config(source, revision, cache_dir, token, local_files_only), **overrides)


def _read_config(source: str, revision, cache_dir, token, local_files_only) -> dict:
    names = (PROCESSOR_CONFIG_NAME, LEGACY_CONFIG_NAME)
    if os.path.isdir(source):
        for name in names:
            path = os.path.join(source, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
        raise OSError(f"The folder {source!r} has neither {names[0]} nor {names[1]}.")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    problems = []
    for name in names:
        try:
            path = hf_hub_download(
                source, name, revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only
            )
        except LocalEntryNotFoundError:  # offline (no network / HF_HUB_OFFLINE) and not cached
            problems.append(f"{name} is not cached and the Hub cannot be reached (offline?)")
            local_files_only = True  # do not wait on the network again for the next name
            continue
        except EntryNotFoundError:
            problems.append(f"{name} is not in the repo")
            continue
        except (RepositoryNotFoundError, HFValidationError) as e:
            raise OSError(
                f"{source!r} is neither a local folder nor a Hub repository id (or the repo is private)."
            ) from e
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    raise OSError(f"Could not load the processor config of {source!r}: " + "; ".join(problems) + ".")


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
