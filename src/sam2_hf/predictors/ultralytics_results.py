"""`Results`, `Masks`, `Boxes`: what `SAM2(...)(source, ...)` returns per image, with the fields and methods
Ultralytics users reach for (`ultralytics.engine.results`; only the segmentation parts SAM 2 produces).

Units: pixels of the original image unless a name ends in "n" (normalized by its width / height). Tensors are
torch until `numpy()`; `cpu()` moves them. The class of every mask is its index (SAM has no classes, as in
Ultralytics), named by its index string.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..media.render import PALETTE, blend_masks

BOX_WIDTH = 2  # pixels, the boxes `plot` draws
CROP_GAIN, CROP_PAD = 1.02, 10  # `save_crop` widens boxes by 2 % and 10 pixels, as Ultralytics' `save_one_box`
CROP_JPEG = dict(quality=95, subsampling=0)  # and writes them with PIL so


def first_free(path: Path) -> Path:
    """`path`, or `path` with -2, -3, ... appended to its stem: the first that does not exist (Ultralytics 8.4's
    `increment_path`: im.jpg, im-2.jpg, ...; predict, predict-2, ...)."""
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
    return candidate


def crop_bounds(xyxy, orig_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A (4,) x1, y1, x2, y2 box in pixels -> the int x1, y1, x2, y2 slice bounds of its crop: centre kept, width and
    height times `CROP_GAIN` plus `CROP_PAD`, truncated toward zero, clipped to the (H, W) image (Ultralytics'
    `save_one_box`, in float32 as it computes)."""
    xyxy = torch.as_tensor(xyxy, dtype=torch.float32)
    centre = (xyxy[:2] + xyxy[2:]) / 2
    half = ((xyxy[2:] - xyxy[:2]) * CROP_GAIN + CROP_PAD) / 2
    box = torch.cat([centre - half, centre + half]).long()
    height, width = orig_shape
    x1, x2 = (int(v) for v in box[0::2].clamp(0, width))
    y1, y2 = (int(v) for v in box[1::2].clamp(0, height))
    return x1, y1, x2, y2


def csv_cell(value) -> str:
    """A summary value as Ultralytics' `to_csv` writes it: "" for None, the repr of a dict or list, else str."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, (dict, list, tuple, set)) else str(value)


def mask_polygons(masks: np.ndarray) -> list[np.ndarray]:
    """(N, H, W) bool -> per mask, a (K, 2) float32 array of x, y pixel vertices of its outer contours (OpenCV,
    simple chain approximation), the regions' contours one after another for a mask of several regions
    (Ultralytics joins them at their closest points instead), (0, 2) for an empty mask."""
    import cv2

    polygons = []
    for mask in np.ascontiguousarray(masks, dtype=np.uint8):
        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        points = np.concatenate([c.reshape(-1, 2) for c in contours]) if contours else np.zeros((0, 2))
        polygons.append(points.astype(np.float32))
    return polygons


def _to(data, how: str):
    """A tensor or array moved as `how` says: "cpu" (tensor on the CPU) or "numpy"."""
    if how == "numpy":
        return data.cpu().numpy() if isinstance(data, torch.Tensor) else data
    return data.cpu() if isinstance(data, torch.Tensor) else torch.as_tensor(data)


@dataclass
class _PerMask:
    """Rows of `data`, one per mask, for an image of `orig_shape` (H, W)."""

    data: torch.Tensor | np.ndarray
    orig_shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def cpu(self):
        return replace(self, data=_to(self.data, "cpu"))

    def numpy(self):
        return replace(self, data=_to(self.data, "numpy"))


@dataclass
class Masks(_PerMask):
    """N binary masks at the original image size: data (N, H, W) bool."""

    def __getitem__(self, index) -> Masks:
        return Masks(self.data[index].reshape(-1, *self.data.shape[1:]), self.orig_shape)

    @property
    def xy(self) -> list[np.ndarray]:
        """Per mask, its polygon (K, 2) float32 in pixels (`mask_polygons`)."""
        return mask_polygons(_to(self.data, "numpy"))

    @property
    def xyn(self) -> list[np.ndarray]:
        """Per mask, its polygon (K, 2) float32 in [0, 1] (x by the width, y by the height)."""
        h, w = self.orig_shape
        return [p / np.array([w, h], np.float32) for p in self.xy]


@dataclass
class Boxes(_PerMask):
    """N boxes with their confidence and class: data (N, 6) float rows x1, y1, x2, y2 (pixels; x2, y2 the last
    mask pixel, as Ultralytics' boxes of SAM masks), confidence (the mask's predicted IoU), class (the mask's
    index)."""

    is_track: bool = False  # Ultralytics' field: no track ids here
    id: None = None

    def __getitem__(self, index) -> Boxes:
        return Boxes(self.data[index].reshape(-1, 6), self.orig_shape)

    @property
    def xyxy(self):
        return self.data[:, :4]

    @property
    def conf(self):
        return self.data[:, 4]

    @property
    def cls(self):
        return self.data[:, 5]

    @property
    def xywh(self):
        """(N, 4) centre x, centre y, width, height in pixels."""
        xyxy = self.xyxy
        out = xyxy.clone() if isinstance(xyxy, torch.Tensor) else xyxy.copy()
        out[:, 0], out[:, 1] = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
        out[:, 2], out[:, 3] = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        return out

    @property
    def xyxyn(self):
        return self._normalized(self.xyxy)

    @property
    def xywhn(self):
        return self._normalized(self.xywh)

    def _normalized(self, boxes):
        """(N, 4) pixel boxes divided by (W, H, W, H)."""
        h, w = self.orig_shape
        scale = [w, h, w, h]
        return boxes / (boxes.new_tensor(scale) if isinstance(boxes, torch.Tensor) else np.array(scale, np.float32))


@dataclass
class Results:
    """One image's masks, as Ultralytics' `Results`.

    orig_img: (H, W, 3) uint8 BGR, the image as read (Ultralytics' channel order). path: its file, or
    "image0.jpg"-style for arrays. masks / boxes: None when nothing was found. speed: milliseconds per stage
    ("preprocess", "inference", "postprocess").
    """

    orig_img: np.ndarray
    path: str
    masks: Masks | None
    boxes: Boxes | None
    speed: dict[str, float] = field(default_factory=dict)

    @property
    def orig_shape(self) -> tuple[int, int]:
        return tuple(self.orig_img.shape[:2])

    @property
    def names(self) -> dict[int, str]:
        """{class: its index string} for classes 0 .. the largest held (objects dropped by `conf` included)."""
        count = int(self.boxes.cls.max()) + 1 if len(self) else 0
        return {i: str(i) for i in range(count)}

    def __len__(self) -> int:
        return 0 if self.boxes is None else len(self.boxes)

    def __getitem__(self, index) -> Results:
        if self.boxes is None:
            raise IndexError("these results hold no masks")
        return replace(self, masks=self.masks[index], boxes=self.boxes[index])

    def cpu(self) -> Results:
        return replace(self, masks=self.masks and self.masks.cpu(), boxes=self.boxes and self.boxes.cpu())

    def numpy(self) -> Results:
        return replace(self, masks=self.masks and self.masks.numpy(), boxes=self.boxes and self.boxes.numpy())

    def plot(self, boxes: bool = True, masks: bool = True, labels: bool = True, conf: bool = True) -> np.ndarray:
        """The image (H, W, 3) uint8 BGR with the masks blended in (`media.render.blend_masks`, one colour per
        mask) and their boxes labelled "<class> <confidence>"."""
        import cv2

        rgb = np.ascontiguousarray(self.orig_img[..., ::-1])
        if self.masks is not None and masks:
            data = _to(self.masks.data, "numpy").astype(bool)
            rgb = blend_masks(rgb, dict(enumerate(data)), {i: PALETTE[i % len(PALETTE)] for i in range(len(data))})
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if self.boxes is not None and boxes:
            for row in _to(self.boxes.data, "numpy"):
                i, color = int(row[5]), PALETTE[int(row[5]) % len(PALETTE)][::-1]
                x1, y1, x2, y2 = (round(float(v)) for v in row[:4])
                cv2.rectangle(bgr, (x1, y1), (x2, y2), color, BOX_WIDTH)
                if labels:
                    text = f"{i} {row[4]:.2f}" if conf else str(i)
                    cv2.putText(bgr, text, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
        return bgr

    def save(self, filename: str | Path | None = None, **plot_args) -> str:
        """Write `plot()` to `filename` (default "results_<image name>"); -> the file name."""
        import cv2

        filename = str(filename or f"results_{Path(self.path).name}")
        if not cv2.imwrite(filename, self.plot(**plot_args)):
            raise OSError(f"Could not write {filename!r} (is the folder there, the extension an image type?).")
        return filename

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Append one YOLO-seg line per mask to `txt_file`: "<class> x1 y1 x2 y2 ..." (the polygon, normalized),
        then the confidence with `save_conf`; masks whose polygon has fewer than 3 points are skipped."""
        lines = []
        if self.boxes is not None:
            rows = _to(self.boxes.data, "numpy")
            polygons = self.masks.xyn if self.masks is not None else [None] * len(rows)
            for row, polygon in zip(rows, polygons):
                if polygon is None or len(polygon) < 3:
                    continue
                values = (int(row[5]), *polygon.reshape(-1).tolist(), *((float(row[4]),) if save_conf else ()))
                lines.append(("%g " * len(values)).rstrip() % values)
        if lines:
            Path(txt_file).parent.mkdir(parents=True, exist_ok=True)
            with open(txt_file, "a", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in lines)
        return str(txt_file)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict]:
        """Per mask: {"name", "class", "confidence", "box": {x1, y1, x2, y2}, "segments": {"x": [...], "y": [...]}},
        coordinates in pixels or (`normalize`) fractions of the width / height, rounded to `decimals`."""
        if self.boxes is None:
            return []
        h, w = self.orig_shape if normalize else (1, 1)
        rows = _to(self.boxes.data, "numpy")
        polygons = self.masks.xy if self.masks is not None else [None] * len(rows)
        out = []
        for row, polygon in zip(rows, polygons):
            x1, y1, x2, y2 = (float(v) for v in row[:4])
            entry = {
                "name": str(int(row[5])),
                "class": int(row[5]),
                "confidence": round(float(row[4]), decimals),
                "box": {
                    k: round(v, decimals) for k, v in (("x1", x1 / w), ("y1", y1 / h), ("x2", x2 / w), ("y2", y2 / h))
                },
            }
            if polygon is not None:
                entry["segments"] = {
                    "x": (polygon[:, 0] / w).astype(float).round(decimals).tolist(),
                    "y": (polygon[:, 1] / h).astype(float).round(decimals).tolist(),
                }
            out.append(entry)
        return out

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """`summary(...)` as a JSON string (indented by 2)."""
        return json.dumps(self.summary(normalize, decimals), indent=2)

    def to_csv(self, normalize: bool = False, decimals: int = 5) -> str:
        """`summary(...)` as the CSV text Ultralytics' `to_csv` writes: a header of its fields, a line per mask, the
        box and segments cells as Python dict reprs (`csv_cell`), quoted where needed; "\n" without masks."""
        rows = self.summary(normalize, decimals)
        columns = list(rows[0]) if rows else []
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([csv_cell(row.get(c)) for c in columns] for row in rows)
        return out.getvalue()

    def to_df(self, normalize: bool = False, decimals: int = 5):
        """`summary(...)` as a polars DataFrame, as Ultralytics' `to_df` (polars comes with ultralytics, not with
        sam2_hf). Raises ImportError naming it when it is not installed."""
        try:
            import polars as pl
        except ImportError as error:
            raise ImportError(
                "Results.to_df() returns a polars DataFrame, as Ultralytics' does: pip install polars (summary(), "
                "to_json() and to_csv() need nothing more)."
            ) from error
        return pl.DataFrame(self.summary(normalize=normalize, decimals=decimals))

    def verbose(self) -> str:
        """Ultralytics' log string: "<count> <name>[s], " per class held (here each mask its own class: "1 0, 1 1,
        "), "(no detections), " without masks."""
        if len(self) == 0:
            return "(no detections), "
        counts = torch.as_tensor(self.boxes.cls).to(torch.int64).bincount()
        return "".join(f"{n} {self.names[i]}{'s' * (n > 1)}, " for i, n in enumerate(counts.tolist()) if n > 0)

    def save_crop(self, save_dir: str | Path, file_name: str | Path = "im.jpg") -> None:
        """Write each mask's box region of `orig_img` (`crop_bounds`) to `save_dir`/<class name>/<file_name's
        stem>.jpg (im2.jpg, im3.jpg, ... when taken: `first_free`), JPEG as Ultralytics' `save_crop` writes them."""
        from PIL import Image

        for row in _to(self.boxes.data, "cpu") if self.boxes is not None else []:
            x1, y1, x2, y2 = crop_bounds(row[:4], self.orig_shape)
            crop = np.ascontiguousarray(self.orig_img[y1:y2, x1:x2, ::-1])
            file = first_free(Path(save_dir) / self.names[int(row[5])] / Path(file_name).with_suffix(".jpg"))
            file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(file, **CROP_JPEG)
