"""Auto-annotation: boxes from a detector, masks from SAM 2, written as a COCO instance file or YOLO-seg labels.

    from sam2_hf import auto_annotate
    auto_annotate("images/", detector="facebook/detr-resnet-50", output_dir="out/")              # COCO
    auto_annotate("images/", detector="google/owlv2-base-patch16-ensemble", labels=["cat", "dog"],
                  output_dir="out/", format="yolo")                                               # YOLO-seg
    auto_annotate("images/", detector="detections.json", output_dir="out/")                       # boxes given

Boxes come from a transformers pipeline (`object-detection`, or `zero-shot-object-detection` with text
`labels`: OWL-ViT, OWLv2, Grounding DINO), given as a Hub id, a local model folder or a pipeline object,
or from an existing detection file: a COCO JSON (images + annotations with XYWH `bbox`) or a folder of
YOLO labels (`<image stem>.txt`, lines `class cx cy w h [score]`, normalized). Each image's boxes go
to SAM 2 as one batch of box prompts (one decoder call, one mask per box).

Outputs in `output_dir`:
- "coco": `annotations.json`, COCO instances: images (id, file_name, height, width), categories (id,
  name), annotations (id, image_id, category_id, segmentation as COCO RLE with str counts, area, bbox
  XYWH of the mask, iscrowd 0, score of the detection);
- "yolo": `labels/<image stem>.txt`, one line per mask `class x1 y1 x2 y2 ...`: the mask's largest outer
  contour (OpenCV) as a polygon normalized by the image width / height; class is the category's index
  in `classes.txt` (one name per line, written beside it). Masks with no polygon of 3+ points are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from ..media.frames import ImageFolderFrames, is_frame_file, to_rgb
from ..media.rle import encode_rle
from ..models.configuration import DEFAULT_MODEL
from ..predictors.image_predictor import Sam2ImagePredictor
from ..processing.validation import read_json_file
from .ultralytics_api import SAM2

ANNOTATION_FORMATS = ("coco", "yolo")
DETECTION_TASKS = ("object-detection", "zero-shot-object-detection")


@dataclass
class Detections:
    """The boxes of one image: boxes (N, 4) float32 x0, y0, x1, y1 in pixels, category_ids (N,) int64
    (keys of the run's categories), scores (N,) float32 (1 where the source has none)."""

    boxes: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_lists(cls, boxes, category_ids, scores) -> Detections:
        """From sequences of N boxes (x0, y0, x1, y1 pixels), category ids and scores (N may be 0)."""
        return cls(
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(category_ids, dtype=np.int64),
            np.asarray(scores, dtype=np.float32),
        )


# A detection source: categories {id: name} and detect(image_path, rgb image (H, W, 3) uint8) -> Detections.
DetectionSource = tuple[dict[int, str], Callable[[Path, np.ndarray], Detections]]


def auto_annotate(
    data,
    detector=None,
    labels: Iterable[str] | None = None,
    output_dir=None,
    format: str = "coco",
    model=DEFAULT_MODEL,
    threshold: float | None = None,
    device=None,
    progress: bool = True,
    *,
    det_model=None,
    sam_model=None,
    conf: float = 0.25,
    iou: float = 0.45,
    imgsz: int = 640,
    max_det: int = 300,
    classes: Iterable[int] | None = None,
) -> Path:
    """Annotate images with SAM 2 masks prompted by detector boxes (see the module docstring).

    Called as Ultralytics' `auto_annotate(data, det_model=..., sam_model=..., device, conf, iou, imgsz, max_det,
    classes, output_dir)` (`det_model` or `sam_model` named), it does what Ultralytics' does:
    `annotate_as_ultralytics`. Otherwise:

    data: a folder of images (JPEG / PNG, any sizes), one image path, or a list of image paths.
    detector: a Hub id or local folder of a transformers detection model, a transformers detection
        pipeline, or the path of a COCO JSON / YOLO label folder holding the boxes.
    labels: text queries for a zero-shot detector (their order gives the category ids 1, 2, ...).
    output_dir: where the outputs go (created). format: "coco" or "yolo".
    model: SAM 2 as a Hub id, folder or Meta `.pt`, or a `Sam2ImagePredictor`.
    threshold: the detector's score threshold (default: the pipeline's own; ignored for files).
    device: where SAM 2 and a pipeline built here run.
    Returns the path written (annotations.json, or the labels folder). Raises ValueError for no images,
    an unknown format, a detector that is not a detection model or pipeline, labels without a zero-shot
    detector (or a zero-shot detector without labels), a detection file matching none of the images;
    if an image cannot be read midway, the outputs of the images before it are written first.
    """
    if det_model is not None or sam_model is not None:
        if detector is not None and det_model is not None:
            raise ValueError("Give the detector once: detector= (sam2_hf's name) or det_model= (Ultralytics').")
        ultralytics_args = dict(conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, classes=classes)
        return annotate_as_ultralytics(
            data, det_model or detector, sam_model or ULTRALYTICS_SAM, device, output_dir=output_dir, **ultralytics_args
        )
    if detector is None:
        raise ValueError("Give a detector: a detection model (Hub id, folder or pipeline) or a detections file.")
    if format not in ANNOTATION_FORMATS:
        raise ValueError(f"format must be one of {ANNOTATION_FORMATS}, got {format!r}.")
    output_dir = "annotations" if output_dir is None else output_dir
    images = list_images(data)
    categories, detect = detection_source(detector, labels, threshold, images, device)
    if not isinstance(model, Sam2ImagePredictor):
        model = Sam2ImagePredictor.from_pretrained(model, device=device)
    results = []
    try:
        for path in tqdm(images, desc="annotating", unit="image", disable=not progress):
            image = read_image(path)
            results.append((path, image.shape[:2], segment_boxes(model, image, detect(path, image))))
    finally:
        written = write_annotations(results, categories, output_dir, format)
    return written


ULTRALYTICS_SAM = "sam2_b.pt"  # Ultralytics' SAM 2 page's model (its function's own default is SAM 1's sam_b.pt)


def annotate_as_ultralytics(data, det_model, sam_model=ULTRALYTICS_SAM, device=None, conf=0.25, iou=0.45, imgsz=640,
                            max_det=300, classes=None, output_dir=None) -> Path:  # fmt: skip
    """Ultralytics' `auto_annotate`: YOLO-seg labels `<output_dir>/<image stem>.txt` (default output_dir:
    `<data's parent>/<data's name>_auto_annotate_labels`), one line per detection, "<class> x1 y1 x2 y2 ..." (its
    mask's polygon `Results.masks.xyn`, normalized; skipped under 3 points), a file only for an image with
    detections. Masks come from `SAM2(sam_model)` (Ultralytics' letterbox and masks), one per detection box.

    det_model: a YOLO `.pt` (needs the ultralytics package; run with conf, iou, imgsz, max_det, classes as
    Ultralytics runs it), or what `detector` takes (a transformers detector or a detections file; `conf` is its
    score threshold, then `classes` and the `max_det` best are kept). Unlike Ultralytics' function (whose SAM drops
    masks scoring at or below 0.25 and then pairs the remaining masks with the wrong classes), every detection gets
    its own mask and class, as its documentation says. Returns the output folder.
    """
    if det_model is None:
        raise ValueError("Give det_model: a YOLO .pt (with ultralytics installed), a detector or a detections file.")
    images = list_images(data)
    output = Path(output_dir) if output_dir else Path(data).parent / f"{Path(data).stem}_auto_annotate_labels"
    output.mkdir(parents=True, exist_ok=True)
    detect = ultralytics_detections(det_model, images, device, conf, iou, imgsz, max_det, classes)
    sam = SAM2(sam_model)
    for path in images:
        rgb = read_image(path)
        found = detect(path, rgb)
        if not len(found.boxes):
            continue
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        result = sam(bgr, bboxes=found.boxes, conf=-1.0, device=device or None, verbose=False)
        rows = zip(found.category_ids.tolist(), result[0].masks.xyn)
        lines = [f"{c} " + " ".join(map(str, s.reshape(-1).tolist())) for c, s in rows if len(s) >= 3]
        (output / f"{path.stem}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return output


def ultralytics_detections(det_model, images, device, conf, iou, imgsz, max_det, classes):
    """detect(image path, rgb) -> Detections for `annotate_as_ultralytics`: a YOLO `.pt` run through ultralytics'
    `YOLO` with Ultralytics' settings, or `detection_source`'s detectors with conf as threshold, then classes and
    the max_det highest scores."""
    wanted = None if classes is None else {int(c) for c in classes}
    if isinstance(det_model, (str, Path)) and str(det_model).lower().endswith(".pt"):
        try:
            from ultralytics import YOLO
        except ImportError as e:
            raise ImportError(
                f"det_model {str(det_model)!r} is a YOLO .pt: pip install ultralytics to use it, or give a "
                "transformers detector (Hub id or pipeline) or a COCO / YOLO detections file."
            ) from e
        yolo = YOLO(str(det_model))
        options = dict(conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, classes=classes, verbose=False)

        def detect(path: Path, image: np.ndarray) -> Detections:
            boxes = yolo(str(path), device=device or None, **options)[0].boxes.cpu()
            return Detections.from_lists(boxes.xyxy.numpy(), boxes.cls.int().numpy(), boxes.conf.numpy())

        return detect
    _, source = detection_source(det_model, None, conf, images, device)

    def detect(path: Path, image: np.ndarray) -> Detections:
        found = source(path, image)
        keep = [
            i for i in np.argsort(-found.scores, kind="stable") if wanted is None or found.category_ids[i] in wanted
        ]
        keep = sorted(keep[:max_det])
        return Detections(found.boxes[keep], found.category_ids[keep], found.scores[keep])

    return detect


def list_images(data) -> list[Path]:
    """A folder (its image files, in natural order), one image path or a list of paths -> [Path].
    ValueError for a folder without images or paths that are not image files."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return list(ImageFolderFrames(data).files)
    paths = [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
    missing = [str(p) for p in paths if not is_frame_file(p)]
    if not paths or missing:
        raise ValueError(f"Not image files: {missing[:5] or 'none given'} (give JPEG / PNG paths or a folder).")
    return paths


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, EXIF orientation applied; ValueError naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return to_rgb(ImageOps.exif_transpose(image), path)
    except OSError as error:
        raise ValueError(f"{path}: not a readable image ({error}).") from error


def segment_boxes(predictor: Sam2ImagePredictor, image: np.ndarray, detections: Detections):
    """One mask per box, all boxes in one decoder call -> (masks (N, H, W) bool, detections). Boxes are
    clipped to the image first (detectors may reach a little past its border)."""
    height, width = image.shape[:2]
    if len(detections.boxes) == 0:
        return np.zeros((0, height, width), dtype=bool), detections
    predictor.set_image(image)
    boxes = np.clip(detections.boxes, 0, [width, height, width, height])
    masks, _, _ = predictor.predict(box=boxes, multimask_output=False)
    return masks.reshape(-1, height, width).astype(bool), detections


# ------------------------------------------------------------------------------------ detections
def detection_source(detector, labels, threshold, images: list[Path], device=None) -> DetectionSource:
    """Categories and a per-image detect function for any kind of `detector` (see `auto_annotate`)."""
    labels = None if labels is None else list(labels)
    path = Path(detector) if isinstance(detector, (str, Path)) else None
    is_coco = path is not None and path.suffix.lower() == ".json"
    is_yolo = path is not None and path.is_dir() and not (path / "config.json").exists()  # not a model folder
    if path is not None and path.is_file() and not is_coco:
        folder = (
            " (YOLO label files are read from their folder: give the folder)" if path.suffix.lower() == ".txt" else ""
        )
        raise ValueError(
            f"detector {detector} is a file but not a COCO detection JSON{folder}. A detector is a COCO JSON, a "
            "folder of YOLO label files, or an object-detection model (Hub id, saved folder or pipeline)."
        )
    if (is_coco or is_yolo) and labels:
        raise ValueError(f"labels {labels} need a zero-shot detector; {detector} is a detection file.")
    if is_coco:
        return coco_detections(path, images)
    if is_yolo:
        return yolo_detections(path, images)
    return pipeline_detections(detector, labels, threshold, device)


def pipeline_detections(detector, labels, threshold, device=None) -> DetectionSource:
    """A transformers (zero-shot) object-detection pipeline, given or built from a model id / folder."""
    pipe = detector if hasattr(detector, "task") else _build_pipeline(detector, device)
    if pipe.task not in DETECTION_TASKS:
        raise ValueError(f"The detector is a {pipe.task!r} pipeline; auto-annotation needs one of {DETECTION_TASKS}.")
    zero_shot = pipe.task == "zero-shot-object-detection"
    if zero_shot and not labels:
        raise ValueError("A zero-shot detector needs labels: the text queries of the objects to find.")
    if labels and not zero_shot:
        raise ValueError(f"labels {labels} need a zero-shot detector (e.g. OWLv2, Grounding DINO); the detector "
                         "is an object-detection model with its own classes.")  # fmt: skip
    if zero_shot:
        categories = {i: name for i, name in enumerate(labels, start=1)}
        options = {"candidate_labels": labels}
    else:
        categories = {int(i): name for i, name in pipe.model.config.id2label.items()}
        options = {}
    if threshold is not None:
        options["threshold"] = threshold
    ids = {name: i for i, name in categories.items()}

    def detect(path: Path, image: np.ndarray) -> Detections:
        found = pipe(Image.fromarray(image), **options)
        boxes = [[d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in found]
        return Detections.from_lists(boxes, [ids[d["label"]] for d in found], [d["score"] for d in found])

    return categories, detect


def _build_pipeline(detector, device):
    """pipeline(task, model=detector) with the task read from the model's config; ValueError when the
    model is not a (zero-shot) object-detection model."""
    from transformers import AutoConfig, pipeline
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES,
        MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES,
    )

    config = AutoConfig.from_pretrained(detector)
    if config.model_type in MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES:
        task = "zero-shot-object-detection"
    elif config.model_type in MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES:
        task = "object-detection"
    else:
        raise ValueError(
            f"detector {str(detector)!r} is a {config.model_type!r} model, not an object-detection model "
            f"({', '.join(sorted(MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES)[:4])}, ...) or a zero-shot one "
            f"({', '.join(sorted(MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES))})."
        )
    return pipeline(task, model=str(detector), device=device)


def coco_detections(path: Path, images: list[Path]) -> DetectionSource:
    """Boxes from a COCO JSON (images matched by file name; bbox XYWH pixels; optional score)."""
    coco = read_json_file(path)
    if not isinstance(coco, dict):
        raise ValueError(f"{path}: a COCO detection file is a JSON object with 'images' and 'annotations'.")
    names = {image["id"]: Path(image["file_name"]).name for image in coco.get("images", [])}
    _check_matches(path, set(names.values()), {p.name for p in images})
    by_name: dict[str, tuple[list, list, list]] = {}
    for a in coco.get("annotations", []):
        x, y, w, h = _coco_box(path, a, names)
        boxes, category_ids, scores = by_name.setdefault(names[a["image_id"]], ([], [], []))
        boxes.append([x, y, x + w, y + h])
        category_ids.append(a["category_id"])
        scores.append(a.get("score", 1.0))
    categories = {c["id"]: c["name"] for c in coco.get("categories", [])}
    categories.update({c: str(c) for _, ids, _ in by_name.values() for c in ids if c not in categories})

    def detect(image_path: Path, image: np.ndarray) -> Detections:
        return Detections.from_lists(*by_name.get(image_path.name, ([], [], [])))

    return categories, detect


def _coco_box(path: Path, annotation, names: dict) -> list[float]:
    """A COCO detection's bbox [x, y, width, height] (pixels), checked; ValueError naming the annotation."""
    where = f"{path}: annotation {annotation.get('id') if isinstance(annotation, dict) else annotation!r}"
    if not isinstance(annotation, dict) or not {"bbox", "image_id", "category_id"} <= set(annotation):
        raise ValueError(f"{where}: a COCO detection has 'image_id', 'category_id' and 'bbox'.")
    box = annotation["bbox"]
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ValueError(f"{where}: bbox is [x, y, width, height] in pixels; got {box!r}.")
    if box[2] < 0 or box[3] < 0:
        raise ValueError(f"{where}: bbox {box} has a negative width or height (COCO boxes are x, y, width, height).")
    if annotation["image_id"] not in names:
        raise ValueError(f"{where}: image_id {annotation['image_id']!r} is not among the file's images.")
    return box


def yolo_detections(folder: Path, images: list[Path]) -> DetectionSource:
    """Boxes from YOLO label files `<stem>.txt` (class cx cy w h [score], normalized); categories are the
    class numbers, named by `classes.txt` in the folder when present."""
    files = {p.stem: p for p in folder.glob("*.txt") if p.name != "classes.txt"}
    if not files:
        hint = f" (are they in {folder / 'labels'}?)" if (folder / "labels").is_dir() else ""
        raise ValueError(f"No YOLO label files (<image stem>.txt) in {folder}{hint}.")
    _check_matches(folder, set(files), {p.stem for p in images})
    rows = {stem: read_yolo_labels(p) for stem, p in files.items()}
    names_file = folder / "classes.txt"
    names = names_file.read_text().splitlines() if names_file.exists() else []

    def detect(path: Path, image: np.ndarray) -> Detections:
        r = rows.get(path.stem, np.zeros((0, 6)))
        height, width = image.shape[:2]
        cx, cy, w, h = (r[:, 1:5] * [width, height, width, height]).T
        return Detections.from_lists(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), r[:, 0], r[:, 5])

    classes = sorted({int(c) for r in rows.values() for c in r[:, 0]} | set(range(len(names))))
    return {c: names[c] if c < len(names) else str(c) for c in classes}, detect


def read_yolo_labels(path: Path) -> np.ndarray:
    """A YOLO detection label file -> (N, 6) float64 rows (class cx cy w h score; cx cy w h fractions of the
    image size, score 1 where the line has none); an empty file is an image without boxes. ValueError naming
    the file and line for anything else."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not YOLO labels (binary content, not text).") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        values = line.split()
        if not values:
            continue
        if len(values) not in (5, 6):
            raise ValueError(
                f"{path}, line {number}: YOLO lines are 'class cx cy w h [score]'; got {len(values)} values."
            )
        try:
            rows.append([float(v) for v in values] + [1.0] * (6 - len(values)))
        except ValueError:
            raise ValueError(f"{path}, line {number}: {line.strip()!r} holds a value that is not a number.") from None
        if not all(0 <= v <= 1 for v in rows[-1][1:5]):
            raise ValueError(
                f"{path}, line {number}: YOLO boxes are fractions of the image size (0 to 1); got "
                f"{line.strip()!r} (pixel coordinates?)."
            )
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _check_matches(source: Path, names: set[str], image_names: set[str]) -> None:
    if not names & image_names:
        raise ValueError(
            f"No image of the detection file {source} is among the images to annotate: it names "
            f"{sorted(names)[:3]}, the images are {sorted(image_names)[:3]}."
        )


# ---------------------------------------------------------------------------------------- outputs
def write_annotations(results, categories: Mapping[int, str], output_dir, format: str) -> Path:
    """Write [(image path, (H, W), (masks, detections))] as `format`; returns the path written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_coco(results, categories, out) if format == "coco" else write_yolo(results, categories, out)


def write_coco(results, categories: Mapping[int, str], out: Path) -> Path:
    """`out/annotations.json`, COCO instances (fields in the module docstring); image ids 1, 2, ... in order."""
    images, annotations = [], []
    for image_id, (path, (height, width), (masks, detections)) in enumerate(results, start=1):
        images.append({"id": image_id, "file_name": path.name, "height": int(height), "width": int(width)})
        for mask, category_id, score in zip(masks, detections.category_ids, detections.scores):
            rle = encode_rle(mask)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(category_id),
                "segmentation": rle,
                "area": int(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
                "score": float(score),
            })  # fmt: skip
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": int(i), "name": name} for i, name in sorted(categories.items())]}  # fmt: skip
    path = out / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def write_yolo(results, categories: Mapping[int, str], out: Path) -> Path:
    """`out/labels/<stem>.txt` YOLO-seg polygons (an empty file for an image without masks) and
    `out/classes.txt`; class = the category's index among the sorted category ids. Returns the labels folder."""
    ids = sorted(categories)
    index = {category_id: i for i, category_id in enumerate(ids)}
    (out / "classes.txt").write_text("".join(f"{categories[i]}\n" for i in ids))
    labels = out / "labels"
    labels.mkdir(exist_ok=True)
    for path, (height, width), (masks, detections) in results:
        lines = []
        for mask, category_id in zip(masks, detections.category_ids):
            polygon = mask_polygon(mask)
            if polygon is not None:
                xy = (polygon / [width, height]).ravel()
                lines.append(" ".join([str(index[int(category_id)]), *(f"{v:.6f}" for v in xy)]))
        (labels / f"{path.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return labels


def mask_polygon(mask: np.ndarray) -> np.ndarray | None:
    """(H, W) mask -> (K, 2) float x, y pixel vertices of its largest outer contour (OpenCV), None if it
    has no contour of 3 or more points."""
    import cv2  # only the YOLO output needs it

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return largest.astype(np.float64) if len(largest) >= 3 else None
