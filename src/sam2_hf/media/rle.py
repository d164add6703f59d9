"""COCO run-length encoding of masks (pycocotools' compressed RLE, column-major), the one codec of the library:
results files, segment-everything outputs, annotations and training data use it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils

from ..processing.validation import read_json_file


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) mask -> {"size": [H, W], "counts": str}, COCO compressed RLE."""
    rle = mask_utils.encode(np.asfortranarray(as_mask(mask), dtype=np.uint8))
    return {"size": [int(n) for n in rle["size"]], "counts": rle["counts"].decode("utf-8")}


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation -> (H, W) bool, as pycocotools' `COCO.annToMask`: polygons (a list of flat
    [x0, y0, x1, y1, ...] pixel lists), uncompressed RLE (counts a list) or compressed RLE (counts a string).
    Raises ValueError saying what is wrong (no polygon at all, e.g. a boxes-only annotation's `[]`; a polygon
    of too few or odd coordinates, non-numbers; an RLE whose size is not (height, width) or whose counts do not
    cover its height x width pixels exactly, which pycocotools decodes into uninitialised memory) instead of
    pycocotools' errors or garbage."""
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError("the segmentation is empty (no polygon: a boxes-only annotation has no mask)")
        for polygon in segmentation:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                count = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
                raise ValueError(f"a polygon is a list of 6 or more x, y pixel coordinates (even count); got {count}")
            if not all(isinstance(v, (int, float)) for v in polygon):
                raise ValueError("a polygon holds a value that is not a number")
        return decode_rle(mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width)))
    if not isinstance(segmentation, Mapping) or not {"size", "counts"} <= set(segmentation):
        raise ValueError("a segmentation is a list of polygons or an RLE dict with 'size' and 'counts'")
    if list(segmentation["size"]) != [height, width]:
        raise ValueError(
            f"the RLE's size {list(segmentation['size'])} is not the image's [height, width] {[height, width]}"
        )
    counts = segmentation["counts"]
    runs = counts if isinstance(counts, list) else rle_runs(counts)
    if any(not isinstance(n, int) or n < 0 for n in runs) or sum(runs) != height * width:
        raise ValueError(
            f"the RLE's counts do not cover its {height}x{width} = {height * width} pixels (runs of {sum(runs)} "
            "pixels, or a negative run): the mask is truncated or belongs to another image size"
        )
    if isinstance(counts, list):
        segmentation = mask_utils.frPyObjects(segmentation, height, width)
    return decode_rle(segmentation)


def rle_runs(counts: str | bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE `counts` string, decoded as pycocotools' `rleFrString`
    (cocoapi maskApi.c): 5 bits per character (offset 48), a continuation bit 0x20, a sign bit 0x10 on the
    last character, and runs after the second stored as differences to the run two before.
    Raises ValueError for a string that ends inside a number or holds characters outside that alphabet."""
    data = counts.encode() if isinstance(counts, str) else bytes(counts)
    runs, position = [], 0
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            if position == len(data):
                raise ValueError("the RLE's counts string ends inside a number (it is truncated)")
            char = data[position] - 48
            if not 0 <= char < 64:
                raise ValueError(f"the RLE's counts string holds {chr(data[position])!r}, not an RLE character")
            value |= (char & 0x1F) << shift
            more, position, shift = bool(char & 0x20), position + 1, shift + 5
            if not more and char & 0x10:
                value |= -1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    return runs


def decode_rle(rle: Mapping) -> np.ndarray:
    """COCO RLE (counts as str or bytes) -> (H, W) bool mask."""
    with warnings.catch_warnings():  # pycocotools' numpy-2 DeprecationWarning on every decode; the result is right
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"]}).astype(bool)


def load_rle_json(path: str | Path) -> dict:
    """The dict `RleJsonWriter` wrote (format in the module docstring); decode masks with `decode_rle`.
    Raises ValueError naming the file when it is not JSON."""
    return read_json_file(path)


def as_mask(mask, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) bool view of `mask`, checked against `shape` (H, W) when given."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or (shape is not None and mask.shape != tuple(shape)):
        expected = f"{shape}" if shape is not None else "(H, W)"
        raise ValueError(f"A mask must have shape {expected}, got {mask.shape}.")
    return mask
