"""`Sam2ImagePredictor`: Meta's `SAM2ImagePredictor` API on a `Sam2Model`.

Embed an image once, then prompt it repeatedly:

    predictor = Sam2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny")
    predictor.set_image(image)                                   # numpy HWC uint8 or PIL
    masks, scores, low_res = predictor.predict(point_coords=[[500, 375]], point_labels=[1])

Same names, arguments, return values and numbers as Meta's predictor; it also works at any
`image_size` and raises errors that name the problem for bad images and prompts.
"""

from __future__ import annotations

import torch

from ..backends import make_backend
from ..backends.exported import exported_folder_backend
from ..backends.protocol import Sam2Backend
from ..models.modeling import Sam2Model
from ..processing.image_processing import preprocess_images, to_rgb_pixels
from ..processing.mask_postprocessing import postprocess_masks
from ..processing.prompts import Prompt, as_tensor, check_not_empty

LOW_RES_LOGIT_LIMIT = 32.0  # returned low-resolution logits are clamped to +-32 (as Meta)
PREDICTOR_ARGS = ("mask_threshold", "max_hole_area", "max_sprinkle_area", "backend")
PREDICT = "Sam2ImagePredictor.predict"  # where prompt errors come from


class Sam2ImagePredictor:
    """Image embeddings computed once by `set_image` / `set_image_batch`, masks by `predict` / `predict_batch`.

    mask_threshold: logits above it are foreground in the returned masks.
    max_hole_area / max_sprinkle_area: if > 0, background / foreground regions of at most that many
    low-resolution pixels are flipped before upscaling (Meta's CUDA-only step, here on any device).
    backend: the compute (backends/protocol.py): None or "torch" (eager PyTorch on `sam_model`), "onnxruntime",
    "openvino" or "torch-export" (the model exported once into a cache and run by that engine, exact), or a backend
    object; `model` stays Meta's attribute (None for a predictor loaded from an exported folder).
    """

    def __init__(
        self,
        sam_model: Sam2Model | None,
        mask_threshold=0.0,
        max_hole_area=0.0,
        max_sprinkle_area=0.0,
        backend: str | Sam2Backend | None = None,
        **kwargs,
    ):
        self.model = sam_model
        self.backend = make_backend(sam_model, backend)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.reset_predictor()

    @classmethod
    def from_pretrained(cls, model_id_or_path, **kwargs) -> Sam2ImagePredictor:
        """A predictor on `Sam2Model.from_pretrained(model_id_or_path)` (Hub id, folder or Meta `.pt`).

        A folder written by `sam2-hf export` is run by `backend` (default: the engine written for its format,
        `exported.default_engine`) without loading the model.
        `mask_threshold`, `max_hole_area`, `max_sprinkle_area`, `backend` go to the predictor, `device` moves the
        model, everything else (e.g. `image_size`, `size`, `version`) goes to `Sam2Model.from_pretrained`.
        """
        predictor_kwargs = {k: kwargs.pop(k) for k in PREDICTOR_ARGS if k in kwargs}
        device = kwargs.pop("device", None)
        exported = exported_folder_backend(model_id_or_path, predictor_kwargs.get("backend"), device, kwargs)
        if exported is not None:
            return cls(None, **{**predictor_kwargs, "backend": exported})
        model = Sam2Model.from_pretrained(model_id_or_path, **kwargs).eval()
        if device is not None:
            model = model.to(device)
        return cls(model, **predictor_kwargs)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def image_size(self) -> int:
        return self.backend.config.image_size

    def reset_predictor(self) -> None:
        """Forget the image embeddings and sizes."""
        self._is_image_set = False
        self._features = None
        self._orig_hw = None
        self._is_batch = False

    # ----------------------------------------------------------------------------------- images
    @torch.inference_mode()
    def set_image(self, image) -> None:
        """Embed one RGB image: numpy (H, W, C) / (H, W), PIL image, or torch (C, H, W); uint8 or floats in [0, 1]."""
        if isinstance(image, (list, tuple)):
            raise TypeError("set_image takes one image; use set_image_batch for a list of images.")
        self._embed([image])

    @torch.inference_mode()
    def set_image_batch(self, image_list) -> None:
        """Embed a list of images (sizes may differ) for `predict_batch`."""
        if not isinstance(image_list, (list, tuple)) or len(image_list) == 0:
            raise TypeError(f"set_image_batch takes a non-empty list of images; got {type(image_list).__name__}.")
        self._embed(list(image_list))
        self._is_batch = True

    def _embed(self, images) -> None:
        for image in images:  # one image each (Meta's API): no batches, paths or lists inside
            to_rgb_pixels(image)
        pixel_values, original_sizes = preprocess_images(images, self.image_size)
        self.reset_predictor()
        self._orig_hw = original_sizes
        features = self.backend.image_encoder.encode_frame(pixel_values.to(self.device, self.backend.dtype))
        image_embed = self.backend.image_encoder.image_only_embedding(features.image_embeddings)
        self._features = {
            "image_embed": image_embed,
            "high_res_feats": features.high_res_features,
            # the mask decoder's prompt-independent work, done once here for every click (None: the backend's)
            "image_projections": self.backend.mask_decoder.project_image(image_embed),
        }
        self._is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """(B, 256, S/16, S/16) embeddings of the set image(s), `no_memory_embedding` included."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) to generate an embedding.")
        return self._features["image_embed"]

    # ---------------------------------------------------------------------------------- prompts
    @torch.inference_mode()
    def predict(
        self,
        point_coords=None,
        point_labels=None,
        box=None,
        mask_input=None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ):
        """Masks for the image set by `set_image`.

        point_coords (N, 2) or (B, N, 2) as x, y, point_labels (N,) or (B, N) with 1 positive / 0 negative,
        box (4,) or (B, 4) as x0, y0, x1, y1, mask_input (1, S/4, S/4) or (B, 1, S/4, S/4) low-resolution
        logits from a previous call. Coordinates are original-image pixels, or fractions in [0, 1] with
        `normalize_coords=False`. B prompt sets give B results at once.

        Returns numpy arrays (a leading B only for B > 1 prompt sets): masks (C, H, W) at the original
        size (float32 0/1 as Meta's predictor returns them, or logits with `return_logits`), iou scores (C,),
        low-resolution logits (C, S/4, S/4) clamped to +-32. C is 3 with `multimask_output`, else 1.
        With no prompt at all (every prompt argument None) the decoder runs without prompt tokens, as
        Meta's predictor does. Raises `EmptyPromptError` (a ValueError) naming an empty prompt argument
        ([], shape (0, 2), ...) and ValueError for other bad prompts.
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        if self._is_batch:
            raise RuntimeError("A batch of images was set with .set_image_batch(...); use .predict_batch(...).")
        return self._predict(
            0, point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
        )

    @torch.inference_mode()
    def predict_batch(
        self,
        point_coords_batch=None,
        point_labels_batch=None,
        box_batch=None,
        mask_input_batch=None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ):
        """`predict` for each image set by `set_image_batch`: each argument is a list with one entry per
        image (as `predict` takes them). Returns three lists (masks, iou scores, low-res logits)."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image_batch(...) before mask prediction.")
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with .set_image_batch(...); use .predict(...).")
        num_images = len(self._orig_hw)
        per_image = []
        for name, values in (
            ("point_coords_batch", point_coords_batch),
            ("point_labels_batch", point_labels_batch),
            ("box_batch", box_batch),
            ("mask_input_batch", mask_input_batch),
        ):
            check_not_empty(values, name, "Sam2ImagePredictor.predict_batch")
            if values is not None and len(values) != num_images:
                raise ValueError(f"{name} has {len(values)} entries but {num_images} images were set.")
            per_image.append(values if values is not None else [None] * num_images)
        results = [
            self._predict(i, *prompts, multimask_output, return_logits, normalize_coords)
            for i, prompts in enumerate(zip(*per_image))
        ]
        return tuple(list(r) for r in zip(*results))

    def _predict(
        self, index, point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
    ):
        """Prompts for image `index` -> numpy masks, iou scores, low-res logits."""
        points, labels, mask_input = self._prepare_prompts(
            index, point_coords, point_labels, box, mask_input, normalize_coords
        )
        prompted = points if points is not None else mask_input
        num_sets = 1 if prompted is None else prompted.shape[0]  # no prompt: one set, as Meta's predictor
        embeddings = self._features["image_embed"][index : index + 1].expand(num_sets, -1, -1, -1)
        high_res = [f[index : index + 1].expand(num_sets, -1, -1, -1) for f in self._features["high_res_feats"]]
        projections = self._features["image_projections"]
        out = self.backend.mask_decoder.decode(
            embeddings, high_res, points, labels, None, mask_input, multimask_output, empty_prompt_as_point=False,
            image_projections=None if projections is None or mask_input is not None else projections.select(index),
        )  # fmt: skip
        masks = postprocess_masks(
            out.masks, self._orig_hw[index], self.mask_threshold, self.max_hole_area, self.max_sprinkle_area
        )
        if not return_logits:
            masks = masks > self.mask_threshold
        low_res = out.masks.clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT)
        return tuple(t.squeeze(0).float().cpu().numpy() for t in (masks, out.iou_scores, low_res))

    def _prepare_prompts(self, index, point_coords, point_labels, box, mask_input, normalize_coords):
        """Checked prompts as model tensors: points (B, K, 2) in input pixels with the box corners
        (labels 2, 3) first, as Meta orders them; labels (B, K); mask_input (B or 1, 1, S/4, S/4).
        Each of the B prompt sets is validated as one `Prompt`."""
        prompts = {"point_coords": point_coords, "point_labels": point_labels, "box": box, "mask_input": mask_input}
        for name, value in prompts.items():
            check_not_empty(value, name, PREDICT)
        if point_coords is None and point_labels is not None:
            raise ValueError("point_labels were given without point_coords.")
        if point_coords is not None and point_labels is None:
            raise ValueError("point_labels must be supplied if point_coords is supplied.")
        coords, labels = self._point_sets(point_coords, point_labels)
        boxes = self._box_sets(box)
        sizes = [len(x) for x in (coords, boxes) if x is not None]
        if len(set(sizes)) > 1:
            raise ValueError(f"box and point_coords must give the same number of prompt sets B; got {sizes}.")
        points = point_labels_out = None
        if sizes:
            height, width = self._orig_hw[index]
            prompts = [
                Prompt(
                    points=None if coords is None else coords[b],
                    labels=None if labels is None else labels[b],
                    box=None if boxes is None else boxes[b],
                    normalized=not normalize_coords,
                )
                for b in range(sizes[0])
            ]
            model_points = [p.model_points(height, width, self.image_size) for p in prompts]
            points = torch.cat([xy for xy, _ in model_points]).to(self.device)
            point_labels_out = torch.cat([lab for _, lab in model_points]).to(self.device)
        if mask_input is not None:
            mask_input = self._prepare_mask_input(mask_input, None if points is None else points.shape[0])
        return points, point_labels_out, mask_input

    @staticmethod
    def _point_sets(point_coords, point_labels):
        """(N, 2) or (B, N, 2) clicks and (N,) or (B, N) labels -> (B, N, 2), (B, N); (None, None) for none."""
        if point_coords is None:
            return None, None
        coords = as_tensor(point_coords, "point_coords", PREDICT)
        labels = as_tensor(point_labels, "point_labels", PREDICT)
        if coords.ndim not in (2, 3) or coords.shape[-1] != 2:
            raise ValueError(f"point_coords must be (N, 2) or (B, N, 2); got shape {tuple(coords.shape)}.")
        if labels.shape != coords.shape[:-1]:
            raise ValueError(
                f"point_labels must have shape {tuple(coords.shape[:-1])} to match point_coords "
                f"{tuple(coords.shape)}; got {tuple(labels.shape)}."
            )
        return coords.reshape(-1, *coords.shape[-2:]), labels.reshape(-1, labels.shape[-1])

    @staticmethod
    def _box_sets(box):
        """(4,) or (B, 4) box -> (B, 4), or None."""
        if box is None:
            return None
        boxes = as_tensor(box, "box", PREDICT)
        if boxes.ndim not in (1, 2) or boxes.shape[-1] != 4:
            raise ValueError(f"box must be (4,) or (B, 4) as x0, y0, x1, y1; got shape {tuple(boxes.shape)}.")
        return boxes.reshape(-1, 4)

    def _prepare_mask_input(self, mask_input, num_sets) -> torch.Tensor:
        low_res = self.image_size // 4
        masks = as_tensor(mask_input, "mask_input", PREDICT)
        if masks.ndim == 3:
            masks = masks[None]
        if masks.ndim != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != (low_res, low_res):
            raise ValueError(
                f"mask_input must be (1, {low_res}, {low_res}) or (B, 1, {low_res}, {low_res}) low-resolution "
                f"logits (a previous call's third output); got shape {tuple(masks.shape)}."
            )
        if num_sets is not None and masks.shape[0] not in (1, num_sets):
            raise ValueError(f"mask_input has {masks.shape[0]} masks but there are {num_sets} prompt sets.")
        return masks.to(self.device, self.backend.dtype)
