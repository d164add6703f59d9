"""`SAM2` (alias `SAM`): Ultralytics' SAM 2 model API on sam2_hf, for images and videos.

    from sam2_hf import SAM2                        # in place of `from ultralytics import SAM2` (or SAM)
    model = SAM2("sam2_b.pt")                       # a release name (fetched from the Hub), a file, folder or Hub id
    results = model("image.jpg", bboxes=[100, 100, 200, 200])
    results = model("image.jpg", points=[150, 150], labels=[1])
    results = model("image.jpg")                    # no prompt: segment everything
    results[0].masks.data, results[0].boxes.xyxy, results[0].plot(), results[0].save_txt("labels.txt")

Prompts, preprocessing and post-processing follow Ultralytics' `SAM2Predictor` (ultralytics 8.4), so the masks
are Ultralytics' on the same weights (tests/test_ultralytics_api.py):
- the image is letterboxed to `imgsz` (aspect kept, padded right / bottom; `letterbox_pixels`), where Meta's
  predictors stretch it; points and boxes are scaled by the same gain;
- points (2,) or (N, 2) are N one-point objects, (N, K, 2) N objects of K points; labels default to positive;
  boxes (4,) or (N, 4) are N objects; boxes with points need as many of each (each box joins its points);
- one mask per object (no multimask), kept when its predicted IoU is above `conf`; its low-resolution logits are
  cut to the letterboxed content and resized to the image (bilinear), foreground above 0;
- masks (H, W) / (N, H, W), of any size (an image's masks, or low-resolution logits of an earlier result), are
  letterboxed to `imgsz` (nearest, zero padding) and resized to the prompt encoder's input (bilinear), their values
  as given; with points or boxes one per object (or one for all), alone N objects;
- boxes are the masks' extents, the confidence the predicted IoU, the class the object's index.
No prompt segments everything with `Sam2AutomaticMaskGenerator` at Ultralytics' settings (`EVERYTHING`): the same
filters, on Meta's stretched input (Ultralytics tiles its letterboxed one), so those masks may differ.
A video file as the source is tracked as Ultralytics' `SAM2VideoPredictor` tracks it (`LetterboxVideoPredictor`, on
sam2_hf's tracking steps: bounded memory, frames decoded as needed): frames letterboxed, the prompts' objects (or
without prompts everything found on frame 0) prompted on frame 0 and tracked forward, one `Results` per frame
(`masks_above`: objects with an empty low-resolution mask dropped, masks not overlapping).
Sources may be http(s) URLs of images (`read_url`). Not here: `save` for videos.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes

from ..backends.torch import TorchBackend
from ..media.frames import open_frames
from ..models.modeling import Sam2Model, Sam2VideoModel
from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from ..predictors.ultralytics_results import Boxes, Masks, Results, first_free
from ..predictors.video_predictor import Sam2VideoPredictor
from ..processing.image_processing import letterbox_gain, letterbox_pixels
from ..processing.mask_postprocessing import apply_non_overlapping_constraints
from ..processing.prompts import Prompt
from ..tracking.selection import ReferenceSelection
from ..tracking.state import VideoSession
from .tracker import MAX_OBJECTS

DEFAULT_MODEL_FILE = "sam2.1_b.pt"
DEFAULT_CONF = 0.25  # Ultralytics' predictor default: masks with a predicted IoU at or below it are dropped
DEFAULT_IMGSZ = 1024  # Ultralytics' SAM input size
MASK_THRESHOLD = 0.0
# Ultralytics' segment-everything settings (`Predictor.generate`'s defaults, `iou` 0.7), in our generator's names
EVERYTHING = dict(
    points_per_side=32,
    points_per_batch=64,
    pred_iou_thresh=0.88,
    stability_score_thresh=0.95,
    stability_score_offset=0.95,
    box_nms_thresh=0.7,
)
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")
URL_TIMEOUT = 30  # seconds an image URL may take to answer
RUNS = Path("runs") / "segment"  # where `save=True` writes, as Ultralytics: runs/segment/predict, predict-2, ...


# ------------------------------------------------------------------------------------------- sources
def read_sources(source) -> Iterator[tuple[str, np.ndarray]]:
    """(path, (H, W, 3) uint8 BGR image) per image of `source`: an image file, a folder (its images, sorted), a
    glob pattern, an http(s) URL of an image (`read_url`), a numpy array (BGR, as OpenCV reads images and
    Ultralytics expects them; (H, W) gray), a PIL image, or a list of these. Raises FileNotFoundError / ValueError
    naming what cannot be read."""
    import cv2

    if source is None:
        raise ValueError("Give a source: an image path, a folder, a glob pattern, an array or a PIL image.")
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            yield f"image{i}.jpg", as_bgr(item, f"source[{i}]" if len(items) > 1 else "source")
        elif hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
            yield (
                getattr(item, "filename", "") or f"image{i}.jpg",
                np.ascontiguousarray(np.asarray(item.convert("RGB"))[..., ::-1]),
            )
        elif is_url(item):
            yield item, read_url(item)
        elif isinstance(item, (str, os.PathLike)):
            for path in image_files(os.fspath(item)):
                image = cv2.imread(path, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{path!r} is not an image OpenCV can read.")
                yield path, image
        else:
            raise TypeError(
                f"Unsupported source {type(item).__name__}: give a path, a folder, an array or a PIL image."
            )


def image_files(spec: str) -> list[str]:
    """The image files a path names: the file, a folder's images (sorted) or a glob pattern's matches."""
    if os.path.isdir(spec):
        files = sorted(str(p) for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in the folder {spec!r}.")
        return files
    if any(c in spec for c in "*?["):
        files = sorted(glob.glob(spec, recursive=True))
        if not files:
            raise FileNotFoundError(f"No file matches {spec!r}.")
        return files
    if Path(spec).suffix.lower() in VIDEO_SUFFIXES:
        raise ValueError(f"{spec!r} is a video among other sources: call the model on the video alone.")
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"No such file or folder: {spec!r}.")
    return [spec]


def is_url(source) -> bool:
    """An http:// or https:// address."""
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def read_url(url: str) -> np.ndarray:
    """An http(s) URL of an image -> (H, W, 3) uint8 BGR: downloaded (urllib, `URL_TIMEOUT` seconds) and decoded by
    OpenCV, in memory. Raises ValueError naming the URL when the download fails or the bytes are not an image."""
    import urllib.request

    import cv2

    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response:
            data = response.read()
    except OSError as error:  # URLError, HTTPError, timeouts
        raise ValueError(f"Could not download {url!r}: {error}") from error
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{url!r} did not return an image OpenCV can read.")
    return image


def as_bgr(image: np.ndarray, what: str) -> np.ndarray:
    """An (H, W, 3) BGR or (H, W) gray uint8 array -> (H, W, 3) uint8 BGR."""
    if image.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8 (0..255, BGR as OpenCV reads images); got {image.dtype}.")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be (H, W, 3) BGR or (H, W) gray; got shape {image.shape}.")
    return image


# ------------------------------------------------------------------------------------------- prompts and masks
def prepare_prompts(bboxes, points, labels, gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ultralytics' prompts -> points (N, K, 2) float32 in letterboxed model pixels (box corners first, labels 2
    and 3, as SAM 2 takes boxes) and labels (N, K) int32, one row per object (module docstring). Raises ValueError
    naming the problem."""
    pts = lab = None
    if points is not None:
        pts = torch.as_tensor(np.asarray(points, dtype=np.float32))
        pts = pts[None] if pts.ndim == 1 else pts
        if pts.ndim not in (2, 3) or pts.shape[-1] != 2 or pts.numel() == 0:
            raise ValueError(f"points must be (2,), (N, 2) or (N, K, 2) x, y pixels; got shape {tuple(pts.shape)}.")
        lab = torch.ones(pts.shape[:-1]) if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int32))
        lab = lab.to(torch.int32)
        if tuple(lab.shape) != tuple(pts.shape[:-1]):
            raise ValueError(
                f"labels must give one label per point, shape {tuple(pts.shape[:-1])}; got {tuple(lab.shape)}."
            )
        pts = pts * gain
        if pts.ndim == 2:  # N points: N one-point objects
            pts, lab = pts[:, None], lab[:, None]
    elif labels is not None:
        raise ValueError("labels were given without points.")
    if bboxes is None:
        if pts is None:
            raise ValueError("No prompt: give bboxes and / or points (or none of them to segment everything).")
        return pts, lab
    boxes = torch.as_tensor(np.asarray(bboxes, dtype=np.float32))
    boxes = boxes[None] if boxes.ndim == 1 else boxes
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(boxes) == 0:
        raise ValueError(f"bboxes must be (4,) or (N, 4) x1, y1, x2, y2 pixels; got shape {tuple(boxes.shape)}.")
    corners = (boxes * gain).view(-1, 2, 2)
    corner_labels = torch.tensor([[2, 3]], dtype=torch.int32).expand(len(corners), -1)
    if pts is None:
        return corners, corner_labels
    if len(pts) != len(corners):
        raise ValueError(f"{len(corners)} boxes and {len(pts)} point sets: give one point set per box (or none).")
    return torch.cat([corners, pts], dim=1), torch.cat([corner_labels, lab], dim=1)


def unletterbox_logits(logits: torch.Tensor, orig_hw: tuple[int, int], image_size: int) -> torch.Tensor:
    """(N, m, m) low-resolution mask logits of a letterboxed image -> (N, H, W) float32 logits of the image: the
    part holding the image (its top left, `letterbox_gain`) resized to H x W, bilinear. Where that part ends
    inside a low-resolution pixel, its exact span is sampled (output pixel centres mapped linearly onto it, edge
    values repeated), as Ultralytics' `scale_masks` does."""
    (h0, w0), m = orig_hw, logits.shape[-1]
    gain = letterbox_gain(h0, w0, image_size)
    span_h, span_w = (max(round(o * gain), 1) * m / image_size for o in (h0, w0))
    rows, cols = max(round(span_h), 1), max(round(span_w), 1)
    x = logits[:, None].float()
    if abs(span_h - rows) + abs(span_w - cols) <= 1e-3:
        return F.interpolate(x[..., :rows, :cols], (h0, w0), mode="bilinear", align_corners=False)[:, 0]
    sh, sw = span_h / m, span_w / m
    theta = x.new_tensor([[[sw, 0, sw - 1], [0, sh, sh - 1]]])
    grid = F.affine_grid(theta, [1, 1, h0, w0], align_corners=False).expand(len(x), -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def letterbox_masks(masks, size: int) -> torch.Tensor:
    """Ultralytics' mask prompts: (H, W) or (N, H, W) values of any size (an image's masks, or low-resolution logits
    of an earlier result) -> (N, 1, size, size) float32: each resized keeping its aspect ratio (nearest; each side
    rounded, at least 1 pixel) to the top left of the square, zeros around (the layout of `letterbox_pixels`), its
    values as given. Raises ValueError for another shape."""
    import cv2

    array = np.asarray(masks, dtype=np.float32)
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"masks must be (H, W) or (N, H, W) with N, H, W > 0; got shape {array.shape}.")
    height, width = array.shape[1:]
    gain = letterbox_gain(height, width, size)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)
    boxed = np.zeros((len(array), size, size), np.float32)
    for out, mask in zip(boxed, array):
        resized = (new_w, new_h) != (width, height)
        out[:new_h, :new_w] = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST) if resized else mask
    return torch.from_numpy(boxed)[:, None]


def mask_inputs(masks, size: int, objects: int | None) -> torch.Tensor:
    """Ultralytics' mask prompts as its prompt encoder takes them: `letterbox_masks` resized to size/4 x size/4
    (bilinear, not antialiased) -> (N, 1, size/4, size/4) float32, N = `objects` (the point / box objects; one mask
    serves all) or, for masks alone, the masks. Raises ValueError when the counts differ."""
    boxed = letterbox_masks(masks, size)
    if objects is not None and len(boxed) not in (1, objects):
        raise ValueError(f"{len(boxed)} masks for {objects} point / box objects: give one mask per object, or one.")
    low = F.interpolate(boxed, (size // 4, size // 4), mode="bilinear", align_corners=False)
    return low.expand(objects or len(low), -1, -1, -1)


def no_prompt(bboxes, points, labels, masks) -> bool:
    """No prompt at all: segment everything."""
    return all(v is None for v in (bboxes, points, labels, masks))


def is_video(source) -> bool:
    """A single video file path (by its suffix)."""
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


@torch.inference_mode()
def decode_prompts(backend, pixel_values: torch.Tensor, orig_hw: tuple[int, int], bboxes, points, labels,
                   masks=None):  # fmt: skip
    """One letterboxed image (`letterbox_pixels`: (1, 3, S, S)) of an (H, W) = `orig_hw` image and Ultralytics'
    prompts (points / boxes: `prepare_prompts`; masks: `mask_inputs`) -> low-resolution mask logits (N, S/4, S/4)
    (one per object, no multimask) and their predicted IoUs (N,) float32 on the CPU."""
    size, device, dtype = backend.config.image_size, backend.device, backend.dtype
    coords = point_labels = masks_in = None
    if not no_prompt(bboxes, points, labels, None):
        coords, point_labels = prepare_prompts(bboxes, points, labels, letterbox_gain(*orig_hw, size))
        coords, point_labels = coords.to(device, dtype), point_labels.to(device)
    if masks is not None:
        masks_in = mask_inputs(masks, size, None if coords is None else len(coords)).to(device, dtype)
    n = len(coords) if coords is not None else len(masks_in)
    features = backend.image_encoder.encode_frame(pixel_values.to(device, dtype))
    embeddings = backend.image_encoder.image_only_embedding(features.image_embeddings).expand(n, -1, -1, -1)
    high_res = [f.expand(n, -1, -1, -1) for f in features.high_res_features]
    out = backend.mask_decoder.decode(
        embeddings, high_res, coords, point_labels, mask_inputs=masks_in, multimask_output=False,
        empty_prompt_as_point=False,
    )  # fmt: skip
    return out.masks[:, 0], out.iou_scores[:, 0].float().cpu()


def masks_above(low_res: torch.Tensor, scores: torch.Tensor, conf: float, orig_hw, image_size: int,
                non_overlapping: bool = False):  # fmt: skip
    """The masks (M, H, W) bool at the image size of the objects whose score (N,) is above `conf`, their scores
    (M,) and object indices (M,): `unletterbox_logits` of low_res (N, S/4, S/4), with `non_overlapping` only the
    highest logit's object kept at each pixel (`apply_non_overlapping_constraints`), foreground above
    `MASK_THRESHOLD`."""
    keep = scores > conf
    logits = unletterbox_logits(low_res[keep.to(low_res.device)], orig_hw, image_size)
    if non_overlapping:
        logits = apply_non_overlapping_constraints(logits)
    return logits.cpu() > MASK_THRESHOLD, scores[keep], torch.arange(len(scores))[keep]


class RunOutputs:
    """What `save` / `save_txt` write for a call: the annotated image under its source's name and YOLO-seg lines in
    `labels/<stem>.txt`, in a numbered run folder (`next_run_folder`) made when the first image is written."""

    def __init__(self, project: Path, name: str, images: bool, labels: bool, conf: bool):
        self.project, self.name, self.images, self.labels, self.conf = project, name, images, labels, conf
        self.folder: Path | None = None  # made at the first result

    def write(self, result: Results) -> None:
        if self.folder is None:
            self.folder = next_run_folder(self.project, self.name)
        if self.images:
            result.save(self.folder / Path(result.path).name)
        if self.labels:
            result.save_txt(self.folder / "labels" / f"{Path(result.path).stem}.txt", save_conf=self.conf)


def next_run_folder(root: Path = RUNS, name: str = "predict") -> Path:
    """root/name, or root/name-2, name-3, ... : the first that does not exist (`first_free`; created)."""
    folder = first_free(root / name)
    folder.mkdir(parents=True)
    return folder


# ------------------------------------------------------------------------------------------- videos
@dataclass(frozen=True, eq=False)
class LetterboxedPrompt(Prompt):
    """One object's prompt on a frame as Ultralytics' video predictor gives it to the model: `points` (K, 2) already
    in letterboxed model-input pixels (`prepare_prompts`: box corners first, labels 2 / 3), passed on as they are
    (a `Prompt` stretches frame pixels); a `mask` (H, W) of any size letterboxed (`letterbox_masks`), values as
    given."""

    def model_points(self, height: int, width: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> coords (1, K, 2) float32 in model-input pixels, labels (1, K) int64 (the frame size is not used)."""
        return self.points[None], self.labels[None]

    def model_mask(self, image_size: int, device=None) -> torch.Tensor:
        """-> (1, 1, S, S) float32 on `device`."""
        return letterbox_masks(self.mask.numpy(), image_size).to(device)


class LetterboxSession(VideoSession):
    """A `VideoSession` whose frames go to the model letterboxed, as Ultralytics' video predictor sends them."""

    def pixel_values(self, frame_idx: int) -> torch.Tensor:
        """Frame -> (1, 3, S, S) float32 (`letterbox_pixels`) on the session's device."""
        rgb = self.frames.frame(frame_idx)
        return letterbox_pixels(np.ascontiguousarray(rgb[..., ::-1]), self.image_size).to(self.device)


class PrunedSelection(ReferenceSelection):
    """SAM 2's memory selection over what Ultralytics' video predictor keeps: after each tracked frame it drops the
    tracked outputs more than num_maskmem * stride frames older (`_prune_non_cond_memory`, to bound memory), so
    the object pointers of tracked frames come from at most num_maskmem * stride + 1 frames back (SAM 2 reads up to
    max_pointers - 1 back); conditioning frames' are all read."""

    def frames_read_back(self) -> int:
        return min(super().frames_read_back(), self.reach)

    @property
    def reach(self) -> int:
        """Frames back the newest kept tracked output can lie."""
        return self.num_maskmem * self.stride + 1

    def select(self, memory, frame_idx: int, reverse: bool, num_frames: int | None):
        selection = super().select(memory, frame_idx, reverse, num_frames)
        conditioning = {id(out) for out in memory.cond.values()}
        pointers = [(t, out) for t, out in selection.pointers if id(out) in conditioning or t <= self.reach]
        return replace(selection, pointers=pointers)


class LetterboxVideoPredictor(Sam2VideoPredictor):
    """`Sam2VideoPredictor` (sam2_hf's tracking steps over the compute seam, frames decoded as needed) set up as
    Ultralytics' `SAM2VideoPredictor`: frames letterboxed (`LetterboxSession`), prompts in letterboxed pixels
    (`LetterboxedPrompt`), no hole filling, memories stored in float16, old tracked outputs dropped
    (`PrunedSelection`; "window" storage: memory stays bounded on long videos). Its masks are the low-resolution
    logits (N, 1, S/4, S/4); `masks_above` un-letterboxes them to the frame."""

    def __init__(self, model: Sam2VideoModel):
        super().__init__(model, fill_hole_area=0, memory_policy="window", memory_dtype=torch.float16,
                         memory_selection=PrunedSelection.from_config)  # fmt: skip

    def init_state(self, video_path) -> VideoSession:
        """A letterboxing session on a video file (`open_frames`), frames encoded when first needed."""
        session = LetterboxSession(open_frames(video_path), self.image_size, self.device, self.memory_policy)
        self.attach(session)
        return session

    def add_new_mask(self, inference_state: VideoSession, frame_idx: int, obj_id, mask):
        """A mask (H, W) of the frame for one object, letterboxed (`LetterboxedPrompt`)."""
        return self.add_prompt(inference_state, LetterboxedPrompt(frame_idx, obj_id, mask=mask))

    def _to_video_resolution(self, state: VideoSession, masks: torch.Tensor) -> torch.Tensor:
        return masks  # the low-resolution logits: `masks_above` maps them to the frame


def video_prompts(predictor: LetterboxVideoPredictor, frames, bboxes, points, labels, masks):
    """Ultralytics' prompts of a video as `LetterboxedPrompt`s on frame 0, object ids 0, 1, ... (its video predictor's
    order): one per point / box object, else one per mask; none given: the masks `Sam2AutomaticMaskGenerator` finds
    on frame 0 at `EVERYTHING` (best predicted IoU first, at most `MAX_OBJECTS`). Raises ValueError for masks with
    points or boxes (a video object is prompted by one or the other)."""
    if no_prompt(bboxes, points, labels, masks):
        records = Sam2AutomaticMaskGenerator(predictor.model, **EVERYTHING).generate(frames.frame(0))
        records = sorted(records, key=lambda r: -r["predicted_iou"])[:MAX_OBJECTS]
        masks = [r["segmentation"] for r in records]
    elif masks is None:
        gain = letterbox_gain(frames.height, frames.width, predictor.image_size)
        coords, point_labels = prepare_prompts(bboxes, points, labels, gain)
        return [LetterboxedPrompt(0, i, points=xy, labels=lab) for i, (xy, lab) in enumerate(zip(coords, point_labels))]
    elif not no_prompt(bboxes, points, labels, None):
        raise ValueError("A video object is prompted by points / boxes or by a mask: give masks= alone.")
    masks = [masks] if np.ndim(masks) == 2 else masks
    return [LetterboxedPrompt(0, i, mask=mask) for i, mask in enumerate(masks)]


# ------------------------------------------------------------------------------------------- the model
class SAM2:
    """Ultralytics' `SAM2("sam2_b.pt")` / `SAM("sam2.1_b.pt")` on sam2_hf (module docstring).

    model: a release file name (fetched from its Hub repo when not here: `Sam2Model.from_pretrained`), a `.pt`
    file, a saved folder or a Hub id. `self.model` is the `Sam2Model`.
    """

    task = "segment"

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL_FILE):
        self.ckpt_path = os.fspath(model)
        self.model = Sam2Model.from_pretrained(self.ckpt_path).eval()  # a release name not here: from the Hub
        self._backends: dict[int, TorchBackend] = {}  # input size -> the model at that size
        self._video_predictors: dict[int, LetterboxVideoPredictor] = {}  # input size -> (made at the first video)

    def __call__(self, source=None, stream: bool = False, bboxes=None, points=None, labels=None, masks=None,
                 conf: float = DEFAULT_CONF, imgsz: int | list[int] = DEFAULT_IMGSZ, device=None, half: bool = False,
                 save: bool = False, save_txt: bool = False, save_conf: bool = False, project: str | os.PathLike = RUNS,
                 name: str = "predict", retina_masks: bool = True, verbose: bool = True, **kwargs):  # fmt: skip
        """Masks for every image of `source` (`read_sources`) -> a list of `Results` (a generator with `stream`); for
        a video file, one per frame (`_track`).

        bboxes (4,) / (N, 4) x1, y1, x2, y2 and points (2,) / (N, 2) / (N, K, 2) x, y in the image's pixels, labels
        1 positive / 0 negative (default all 1), masks (H, W) / (N, H, W) (`mask_inputs`): N objects (module
        docstring); none of them: segment everything.
        conf: keep masks whose predicted IoU is above it. imgsz: the square input size (int or [s, s], a multiple
        of 32). device: "cpu", "cuda", "cuda:1", "0", a torch.device (default: where the model is). half: fp16
        (CUDA only). save: write each `plot()` under its source's name to `project`/`name` (a new numbered folder
        per call, made at the first image, as Ultralytics); save_txt: also its YOLO-seg lines to
        `labels/<stem>.txt` there (with the confidence for `save_conf`). retina_masks: accepted; the masks are
        always at the image size (Ultralytics' SAM sets it too). verbose: print a line per image and the folder.
        Raises ValueError / TypeError / FileNotFoundError naming a bad source, prompt or setting.
        """
        if kwargs.pop("show", False):
            raise NotImplementedError("show=True (a window per image) is not supported: use results[i].plot().")
        if kwargs:
            raise TypeError(f"Unknown argument(s) {', '.join(sorted(kwargs))} for SAM2(...)(source, ...).")
        if is_video(source):
            if save or save_txt:
                raise NotImplementedError("save= / save_txt= for videos: use Sam2Tracker(...).track(...).save(...).")
            run = self._track(source, square_size(imgsz), device, (bboxes, points, labels, masks), conf, verbose)
            return run if stream else list(run)
        backend = self._backend(square_size(imgsz), device, half)
        saving = RunOutputs(Path(project), name, save, save_txt, save_conf) if save or save_txt else None
        run = self._predict(backend, source, (bboxes, points, labels, masks), conf, saving, verbose)
        return run if stream else list(run)

    predict = __call__

    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device) -> SAM2:
        """Move the model, its resized copies and its video predictors' models to `device`; -> self."""
        videos = (p.model for p in self._video_predictors.values())
        for model in (self.model, *(b.model for b in self._backends.values()), *videos):
            model.to(torch_device(device))
        return self

    def info(self, detailed: bool = False, verbose: bool = True) -> tuple[int, int, int, None]:
        """(layers, parameters, gradients, GFLOPs) in the form of Ultralytics' `model.info()`, counted on the image
        model this class runs (Ultralytics' SAM 2 also holds the memory modules for video, so its counts are
        larger; GFLOPs: None, not computed); printed with `verbose`."""
        layers = sum(1 for _ in self.model.modules())
        params = sum(p.numel() for p in self.model.parameters())
        grads = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if verbose:
            print(
                f"{type(self).__name__} ({self.ckpt_path}) summary: {layers} layers, {params:,} parameters, "
                f"{grads:,} gradients"
            )
        if detailed:
            for name, p in self.model.named_parameters():
                print(f"{name:<80} {list(p.shape)}")
        return layers, params, grads, None

    def _backend(self, size: int, device, half: bool) -> TorchBackend:
        """The model at input size `size` (built once per size), moved to `device` and fp16 with `half`."""
        if size not in self._backends:
            model = self.model if size == self.model.config.image_size else self.model.at_image_size(size)
            self._backends[size] = TorchBackend(model)
        backend = self._backends[size]
        if device is not None:
            backend.model.to(torch_device(device))
        if half:
            if backend.device.type != "cuda":
                raise ValueError("half=True needs a CUDA device here (fp16 on the CPU is slower than fp32).")
            backend.model.half()
        elif backend.dtype != torch.float32:
            backend.model.float()
        return backend

    @torch.inference_mode()
    def _predict(self, backend, source, prompts, conf, saving, verbose) -> Iterator[Results]:
        """`Results` per image of `source`; prompts: (bboxes, points, labels, masks) as given to `__call__`."""
        size, everything = backend.config.image_size, no_prompt(*prompts)
        for i, (path, bgr) in enumerate(read_sources(source), start=1):
            began = time.perf_counter()
            image = np.ascontiguousarray(bgr[..., ::-1]) if everything else letterbox_pixels(bgr, size)
            prepared = time.perf_counter()
            if everything:
                masks, scores, index = self._everything(backend.model, image, conf)
                inferred = time.perf_counter()
            else:
                low_res, scores = decode_prompts(backend, image, bgr.shape[:2], *prompts)
                inferred = time.perf_counter()
                masks, scores, index = masks_above(low_res, scores, conf, bgr.shape[:2], size)
            result = self._results(path, bgr, masks, scores, index)
            result.speed = {
                "preprocess": 1000 * (prepared - began),
                "inference": 1000 * (inferred - prepared),
                "postprocess": 1000 * (time.perf_counter() - inferred),
            }
            if saving is not None:
                saving.write(result)
            if verbose:
                h, w = bgr.shape[:2]
                print(f"image {i} {path}: {h}x{w} {len(result)} masks, {result.speed['inference']:.1f}ms")
            yield result
        if saving is not None and saving.folder is not None and verbose:
            print(f"Results saved to {saving.folder}")

    def _track(self, video, size: int, device, prompts, conf: float, verbose: bool) -> Iterator[Results]:
        """A video file tracked as Ultralytics' `SAM2VideoPredictor` tracks it (`LetterboxVideoPredictor`): the
        objects of prompts (bboxes, points, labels, masks; `video_prompts`) on frame 0 followed forward, one
        `Results` per frame holding the objects whose low-resolution mask is not empty (confidence 1, as
        Ultralytics scores them; with conf >= 1 none), masks not overlapping (`masks_above`), class = object
        index."""
        predictor = self._video_predictor(size, device)
        frames = open_frames(os.fspath(video))
        with frames:
            state = predictor.init_state(frames)
            for prompt in video_prompts(predictor, frames, *prompts):
                predictor.add_prompt(state, prompt)
            empty = torch.zeros(0, 1, size // 4, size // 4)
            run = predictor.propagate_in_video(state, 0) if state.objects else (
                (t, [], empty) for t in range(frames.num_frames))  # fmt: skip
            for frame_idx, _, low_res in run:
                began = time.perf_counter()
                bgr = np.ascontiguousarray(frames.frame(frame_idx)[..., ::-1])
                present = (low_res.flatten(1) > MASK_THRESHOLD).any(1).float().cpu()
                masks, scores, index = masks_above(low_res[:, 0], present, conf, bgr.shape[:2], size, True)
                result = self._results(os.fspath(video), bgr, masks, scores, index)
                result.speed = {"postprocess": 1000 * (time.perf_counter() - began)}
                if verbose:
                    print(f"video frame {frame_idx} {video}: {len(result)} masks")
                yield result

    def _video_predictor(self, size: int, device) -> LetterboxVideoPredictor:
        """The video model at input size `size` (loaded once per size), moved to `device`."""
        if size not in self._video_predictors:
            model = Sam2VideoModel.from_pretrained(self.ckpt_path, image_size=size)
            self._video_predictors[size] = LetterboxVideoPredictor(model)
        predictor = self._video_predictors[size]
        if device is not None:
            predictor.model.to(torch_device(device))
        return predictor

    def _everything(self, model, rgb, conf):
        """An (H, W, 3) RGB image -> the masks (M, H, W) bool, predicted IoUs (M,) and indices (M,) of
        `Sam2AutomaticMaskGenerator` at `EVERYTHING` whose predicted IoU is above `conf`."""
        records = Sam2AutomaticMaskGenerator(model, **EVERYTHING).generate(rgb)
        records = [r for r in records if r["predicted_iou"] > conf]
        h, w = rgb.shape[:2]
        masks = torch.as_tensor(np.stack([r["segmentation"] for r in records])) if records else torch.zeros(0, h, w)
        scores = torch.tensor([r["predicted_iou"] for r in records], dtype=torch.float32)
        return masks.bool(), scores, torch.arange(len(records))

    @staticmethod
    def _results(path: str, bgr: np.ndarray, masks: torch.Tensor, scores: torch.Tensor, index: torch.Tensor):
        """`Results` of masks (M, H, W) bool with their predicted IoUs (M,) and object indices (M,): boxes are the
        masks' extents (inclusive pixel indices, zeros for an empty mask), the class each object's index."""
        boxes = masks_to_boxes(masks) if len(masks) else torch.zeros(0, 4)
        rows = torch.cat([boxes, scores[:, None], index[:, None].float()], dim=1)
        orig_hw = bgr.shape[:2]
        return Results(bgr, path, Masks(masks, orig_hw), Boxes(rows, orig_hw))


SAM = SAM2  # today's ultralytics names the class SAM


class SAM2VideoPredictor:
    """Ultralytics' `SAM2VideoPredictor(overrides=dict(model=..., imgsz=..., conf=...))`, called as
    `predictor(source="video.mp4", points=..., labels=..., bboxes=...)` (or `masks=...`): the prompts' objects on
    frame 0 tracked through the video by `SAM2`'s video path (`LetterboxVideoPredictor`: Ultralytics' masks,
    bounded memory, frames decoded as needed), one `Results` per frame (a generator with `stream=True`). Overrides
    this does not use (task, mode, save, ...) are accepted as Ultralytics accepts them. Its import path is
    `sam2_hf.ultralytics` (`sam2_hf.SAM2VideoPredictor` is Meta's predictor)."""

    def __init__(self, cfg=None, overrides: dict | None = None, _callbacks=None):
        self.args = {"model": DEFAULT_MODEL_FILE, "imgsz": DEFAULT_IMGSZ, "device": None, **(overrides or {})}
        self.args["conf"] = DEFAULT_CONF if self.args.get("conf") is None else self.args["conf"]
        self.model = SAM2(self.args["model"])

    def __call__(self, source=None, stream: bool = False, bboxes=None, points=None, labels=None, masks=None):
        """Results per frame of the video `source` (a video file), the prompts given on frame 0 (`SAM2._track`)."""
        if not is_video(source):
            raise ValueError(f"SAM2VideoPredictor tracks a video file (mp4, mov, ...); got {source!r}.")
        options = {k: self.args[k] for k in ("imgsz", "device", "conf")} | {"verbose": self.args.get("verbose", False)}
        return self.model(source, stream=stream, bboxes=bboxes, points=points, labels=labels, masks=masks, **options)


def square_size(imgsz) -> int:
    """An int or a [s, s] pair -> s; ValueError for a non-square size or one not a multiple of 32."""
    sizes = [int(imgsz)] if np.isscalar(imgsz) else [int(s) for s in imgsz]
    if len(set(sizes)) != 1 or len(sizes) > 2:
        raise ValueError(f"SAM 2 takes a square input: imgsz is one number or [s, s]; got {imgsz!r}.")
    if sizes[0] <= 0 or sizes[0] % 32:
        raise ValueError(f"imgsz must be a positive multiple of 32 (SAM 2's largest stride); got {sizes[0]}.")
    return sizes[0]


def torch_device(device) -> torch.device:
    """ "cpu", "cuda", "cuda:1", "0" or "1" (Ultralytics' GPU indices), or a torch.device -> torch.device."""
    if isinstance(device, str) and device.isdigit():
        return torch.device(f"cuda:{device}")
    return torch.device(device)
