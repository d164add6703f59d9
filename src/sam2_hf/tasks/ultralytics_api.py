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
- boxes are the masks' extents, the confidence the predicted IoU, the class the object's index.
No prompt segments everything with `Sam2AutomaticMaskGenerator` at Ultralytics' settings (`EVERYTHING`): the same
filters, on Meta's stretched input (Ultralytics tiles its letterboxed one), so those masks may differ.
A video file or frame folder as the source is tracked by `Sam2Tracker` (module `tracker`: bounded memory, frames
decoded as needed): the prompts' objects from frame 0, or without prompts everything found on frame 0; one `Results`
per frame. Its input is Meta's (stretched), so video masks are sam2_hf's, not Ultralytics' letterboxed ones.
Not here yet: mask prompts, URLs, `save` for videos.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes

from ..backends.torch import TorchBackend
from ..media.frames import open_frames
from ..models.modeling import Sam2Model
from ..predictors.automatic_mask_generator import Sam2AutomaticMaskGenerator
from ..predictors.ultralytics_results import Boxes, Masks, Results
from ..processing.image_processing import letterbox_gain, letterbox_pixels
from ..processing.prompts import Prompt
from .tracker import Sam2Tracker

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
RUNS = Path("runs") / "segment"  # where `save=True` writes, as Ultralytics: runs/segment/predict, predict2, ...


# ------------------------------------------------------------------------------------------- sources
def read_sources(source) -> Iterator[tuple[str, np.ndarray]]:
    """(path, (H, W, 3) uint8 BGR image) per image of `source`: an image file, a folder (its images, sorted), a
    glob pattern, a numpy array (BGR, as OpenCV reads images and Ultralytics expects them; (H, W) gray), a PIL
    image, or a list of these. Raises FileNotFoundError / ValueError naming what cannot be read."""
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
    if spec.startswith(("http://", "https://")):
        raise ValueError(f"URLs are not read here yet: download {spec!r} and pass the file.")
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


def is_video(source) -> bool:
    """A single video file path (by its suffix)."""
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


def frame_prompts(bboxes, points, labels) -> list[Prompt]:
    """Ultralytics' prompts (`prepare_prompts`' layout, in the frames' pixels) as one `Prompt` per object on
    frame 0, object ids 1, 2, ...: a box's corners become its box, the other points its clicks."""
    coords, point_labels = prepare_prompts(bboxes, points, labels, gain=1.0)
    prompts = []
    for obj, (xy, lab) in enumerate(zip(coords.tolist(), point_labels.tolist()), start=1):
        box = xy[0] + xy[1] if lab[:2] == [2, 3] else None
        clicks = (xy[2:], lab[2:]) if box is not None else (xy, lab)
        prompts.append(Prompt(0, obj, points=clicks[0] or None, labels=clicks[1] or None, box=box))
    return prompts


@torch.inference_mode()
def decode_prompts(backend, pixel_values: torch.Tensor, orig_hw: tuple[int, int], bboxes, points, labels):
    """One letterboxed image (`letterbox_pixels`: (1, 3, S, S)) of an (H, W) = `orig_hw` image and Ultralytics'
    prompts -> low-resolution mask logits (N, S/4, S/4) (one per object, no multimask) and their predicted IoUs
    (N,) float32 on the CPU."""
    coords, point_labels = prepare_prompts(bboxes, points, labels, letterbox_gain(*orig_hw, backend.config.image_size))
    features = backend.image_encoder.encode_frame(pixel_values.to(backend.device, backend.dtype))
    n = len(coords)
    embeddings = backend.image_encoder.image_only_embedding(features.image_embeddings).expand(n, -1, -1, -1)
    high_res = [f.expand(n, -1, -1, -1) for f in features.high_res_features]
    out = backend.mask_decoder.decode(
        embeddings, high_res, coords.to(backend.device, backend.dtype), point_labels.to(backend.device),
        multimask_output=False, empty_prompt_as_point=False,
    )  # fmt: skip
    return out.masks[:, 0], out.iou_scores[:, 0].float().cpu()


def masks_above(low_res: torch.Tensor, scores: torch.Tensor, conf: float, orig_hw, image_size: int):
    """The masks (M, H, W) bool at the image size of the objects whose predicted IoU is above `conf`, their IoUs
    (M,) and object indices (M,) (`unletterbox_logits`, foreground above `MASK_THRESHOLD`)."""
    keep = scores > conf
    logits = unletterbox_logits(low_res[keep.to(low_res.device)], orig_hw, image_size)
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
    """root/name, or root/name2, name3, ... : the first that does not exist (created)."""
    folder, n = root / name, 2
    while folder.exists():
        folder, n = root / f"{name}{n}", n + 1
    folder.mkdir(parents=True)
    return folder


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
        self._trackers: dict[int, Sam2Tracker] = {}  # input size -> the video tracker (made at the first video)

    def __call__(self, source=None, stream: bool = False, bboxes=None, points=None, labels=None, masks=None,
                 conf: float = DEFAULT_CONF, imgsz: int | list[int] = DEFAULT_IMGSZ, device=None, half: bool = False,
                 save: bool = False, save_txt: bool = False, save_conf: bool = False, project: str | os.PathLike = RUNS,
                 name: str = "predict", retina_masks: bool = True, verbose: bool = True, **kwargs):  # fmt: skip
        """Masks for every image of `source` (`read_sources`) -> a list of `Results` (a generator with `stream`).

        bboxes (4,) / (N, 4) x1, y1, x2, y2 and points (2,) / (N, 2) / (N, K, 2) x, y in the image's pixels, labels
        1 positive / 0 negative (default all 1): N objects (module docstring); none of them: segment everything.
        conf: keep masks whose predicted IoU is above it. imgsz: the square input size (int or [s, s], a multiple
        of 32). device: "cpu", "cuda", "cuda:1", "0", a torch.device (default: where the model is). half: fp16
        (CUDA only). save: write each `plot()` under its source's name to `project`/`name` (a new numbered folder
        per call, made at the first image, as Ultralytics); save_txt: also its YOLO-seg lines to
        `labels/<stem>.txt` there (with the confidence for `save_conf`). retina_masks: accepted; the masks are
        always at the image size (Ultralytics' SAM sets it too). verbose: print a line per image and the folder.
        Raises ValueError / TypeError / FileNotFoundError naming a bad source, prompt or setting.
        """
        if masks is not None:
            raise NotImplementedError("Mask prompts are not supported by SAM2(...) yet; use Sam2ImagePredictor.")
        if kwargs.pop("show", False):
            raise NotImplementedError("show=True (a window per image) is not supported: use results[i].plot().")
        if kwargs:
            raise TypeError(f"Unknown argument(s) {', '.join(sorted(kwargs))} for SAM2(...)(source, ...).")
        if is_video(source):
            if save or save_txt:
                raise NotImplementedError("save= / save_txt= for videos: use Sam2Tracker(...).track(...).save(...).")
            run = self._track(source, square_size(imgsz), device, bboxes, points, labels, verbose)
            return run if stream else list(run)
        backend = self._backend(square_size(imgsz), device, half)
        saving = RunOutputs(Path(project), name, save, save_txt, save_conf) if save or save_txt else None
        run = self._predict(backend, source, bboxes, points, labels, conf, saving, verbose)
        return run if stream else list(run)

    predict = __call__

    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device) -> SAM2:
        """Move the model, its resized copies and its video trackers to `device`; -> self."""
        trackers = (t.predictor.model for t in self._trackers.values())
        for model in (self.model, *(b.model for b in self._backends.values()), *trackers):
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
    def _predict(self, backend, source, bboxes, points, labels, conf, saving, verbose) -> Iterator[Results]:
        size, everything = backend.config.image_size, bboxes is None and points is None and labels is None
        for i, (path, bgr) in enumerate(read_sources(source), start=1):
            began = time.perf_counter()
            image = np.ascontiguousarray(bgr[..., ::-1]) if everything else letterbox_pixels(bgr, size)
            prepared = time.perf_counter()
            if everything:
                masks, scores, index = self._everything(backend.model, image, conf)
                inferred = time.perf_counter()
            else:
                low_res, scores = decode_prompts(backend, image, bgr.shape[:2], bboxes, points, labels)
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

    def _track(self, video, size, device, bboxes, points, labels, verbose) -> Iterator[Results]:
        """A video file: the prompts' objects (Ultralytics' layout, on frame 0) tracked forward by
        `Sam2Tracker` (bounded memory, frames decoded as needed), or without prompts everything found on frame 0
        (the automatic mask generator at `EVERYTHING`) tracked; one `Results` per frame (boxes' confidence 1, as
        Ultralytics' video predictor gives; class = the object's index)."""
        if size not in self._trackers:
            self._trackers[size] = Sam2Tracker.from_pretrained(self.ckpt_path, image_size=size)
        tracker = self._trackers[size]
        if device is not None:
            tracker.predictor.model.to(torch_device(device))
        frames = open_frames(os.fspath(video) if isinstance(video, os.PathLike) else video)
        if bboxes is None and points is None and labels is None:
            generator = Sam2AutomaticMaskGenerator(tracker.predictor.model, **EVERYTHING)
            run = tracker.iter_track(frames, None, progress=False, generator=generator)
        else:
            run = tracker.iter_track(frames, frame_prompts(bboxes, points, labels), "forward", progress=False)
        with frames:
            for frame_idx, masks in run:
                began = time.perf_counter()
                bgr = np.ascontiguousarray(frames.frame(frame_idx)[..., ::-1])
                ids = sorted(masks)
                stacked = torch.as_tensor(np.stack([masks[i] for i in ids])) if ids else torch.zeros(0, *bgr.shape[:2])
                index = torch.tensor([i - 1 for i in ids], dtype=torch.int64)
                result = self._results(os.fspath(video), bgr, stacked.bool(), torch.ones(len(ids)), index)
                result.speed = {"postprocess": 1000 * (time.perf_counter() - began)}
                if verbose:
                    print(f"video frame {frame_idx} {video}: {len(result)} masks")
                yield result

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
    `predictor(source="video.mp4", points=..., labels=..., bboxes=...)`: the prompts' objects on frame 0 tracked
    through the video by `SAM2`'s video path (`Sam2Tracker`: bounded memory, frames decoded as needed), one
    `Results` per frame (a generator with `stream=True`). Overrides this does not use (task, mode, save, ...) are
    accepted as Ultralytics accepts them. Its import path is `sam2_hf.ultralytics` (`sam2_hf.SAM2VideoPredictor` is
    Meta's predictor)."""

    def __init__(self, cfg=None, overrides: dict | None = None, _callbacks=None):
        self.args = {"model": DEFAULT_MODEL_FILE, "imgsz": DEFAULT_IMGSZ, "device": None, **(overrides or {})}
        self.model = SAM2(self.args["model"])

    def __call__(self, source=None, stream: bool = False, bboxes=None, points=None, labels=None, masks=None):
        """Results per frame of the video `source` (a video file), the prompts given on frame 0."""
        if not is_video(source):
            raise ValueError(f"SAM2VideoPredictor tracks a video file (mp4, mov, ...); got {source!r}.")
        options = dict(imgsz=self.args["imgsz"], device=self.args["device"], verbose=self.args.get("verbose", False))
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
