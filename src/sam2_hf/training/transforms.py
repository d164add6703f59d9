"""Augmentations of a clip's frames and masks together, as Meta's `sam2.1_hiera_b+_MOSE_finetune.yaml` lists
them (`vos.train_transforms`), written with torchvision.transforms.v2 and tv_tensors (the frames a `Video`, the
masks a `Mask`, so every geometric step moves both alike):

    RandomHorizontalFlip (consistent) -> RandomAffine(degrees 25, shear 20, bilinear; consistent; skipped when
    it empties an object's mask on the first frame, as Meta's does) -> Resize to S x S (square, masks nearest) ->
    ColorJitter(brightness 0.1, contrast 0.03, saturation 0.03; consistent) -> RandomGrayscale(p 0.05;
    consistent) -> ColorJitter(0.1, 0.05, 0.05; per frame) -> Normalize(ImageNet mean / std)

"consistent" means one draw for the whole clip. Meta's affine guard (`num_tentatives` draws; when each one
empties a first-frame object, the clip is left unmoved) is judged here after the resize, on the S x S masks:
Meta judges at the source size, so an affine that leaves an object a sliver the resize then drops passes its
guard and the clip starts with an empty object; here it does not. Frames are converted to floats in [0, 1] first, so the
evaluation path (`augment=False`: Resize + Normalize) is the inference preprocessing (`Sam2ImageProcessor`:
float bilinear antialiased resize, then normalize). Randomness comes from torch's global generator; the
dataset seeds it per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..processing.image_processing import IMAGENET_MEAN, IMAGENET_STD

AFFINE_FILL = (123, 116, 103)  # Meta's RandomAffine `image_mean` (0..255): the colour of uncovered corners


@dataclass
class ClipTransforms:
    """Frames + masks of one clip -> model inputs, with Meta's fine-tuning augmentations (module docstring).

    Fields (defaults: Meta's MOSE fine-tuning config):
        image_size (int, 1024): side S of the square output, pixels.
        augment (bool, True): False gives resize + normalize only (evaluation).
        hflip_prob (float, 0.5): probability of flipping the clip horizontally.
        degrees (float, 25): rotation drawn in [-degrees, degrees].
        shear (float, 20): x shear drawn in [-shear, shear] degrees.
        brightness / contrast / saturation (float, 0.1 / 0.03 / 0.03): consistent colour jitter strengths.
        grayscale_prob (float, 0.05): probability of turning the clip gray.
        frame_brightness / frame_contrast / frame_saturation (float, 0.1 / 0.05 / 0.05): per-frame jitter.
        mean / std (3 floats, ImageNet): normalization.
        num_tentatives (int, 1): affine draws tried before leaving the clip unmoved (Meta's RandomAffine).
    """

    image_size: int = 1024
    augment: bool = True
    hflip_prob: float = 0.5
    degrees: float = 25.0
    shear: float = 20.0
    brightness: float = 0.1
    contrast: float = 0.03
    saturation: float = 0.03
    grayscale_prob: float = 0.05
    frame_brightness: float = 0.1
    frame_contrast: float = 0.05
    frame_saturation: float = 0.05
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    num_tentatives: int = 1

    def __post_init__(self):
        fill = {tv_tensors.Video: tuple(v / 255 for v in AFFINE_FILL), tv_tensors.Mask: 0}
        bilinear = v2.InterpolationMode.BILINEAR
        self.flip = v2.RandomHorizontalFlip(self.hflip_prob)
        self.affine = v2.RandomAffine(self.degrees, shear=self.shear, interpolation=bilinear, fill=fill)
        self.resize = v2.Resize((self.image_size, self.image_size), interpolation=bilinear, antialias=True)
        self.colors = v2.Compose([
            v2.ColorJitter(self.brightness, self.contrast, self.saturation),
            v2.RandomGrayscale(self.grayscale_prob),
        ])  # fmt: skip
        self.frame_colors = v2.ColorJitter(self.frame_brightness, self.frame_contrast, self.frame_saturation)
        self.normalize = v2.Normalize(list(self.mean), list(self.std))

    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (T, H, W, 3) uint8 RGB, masks (T, O, H, W) bool -> pixel_values (T, 3, S, S) float32
        normalized, masks (T, O, S, S) bool (nearest-neighbour geometry, so masks stay binary)."""
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2).float().div(255))
        target = tv_tensors.Mask(masks.to(torch.uint8))
        if self.augment:
            video, target = self._affine_and_resize(*self.flip(video, target))
        else:
            video, target = self.resize(video, target)
        if self.augment:
            video = self.colors(video)
            frames = [self.frame_colors(tv_tensors.Image(f)) for f in video.as_subclass(torch.Tensor)]
            video = tv_tensors.Video(torch.stack(frames))
        return self.normalize(video).as_subclass(torch.Tensor), target.as_subclass(torch.Tensor).bool()

    def _affine_and_resize(self, video, target):
        """Affine then resize, Meta's guard judged on the resized first frame (module docstring): up to
        `num_tentatives` affine draws, the first that keeps every object visible at S x S on the first frame
        visible; else the clip resized unmoved."""
        visible = resize_masks(target[0], self.image_size).flatten(1).any(1)
        for _ in range(self.num_tentatives):
            moved_video, moved_target = self.resize(*self.affine(video, target))
            if bool(moved_target[0].flatten(1).any(1)[visible].all()):
                return moved_video, moved_target
        return self.resize(video, target)


def resize_masks(masks: torch.Tensor, image_size: int) -> torch.Tensor:
    """(..., H, W) bool -> (..., S, S) bool, S = `image_size`, resized as `ClipTransforms` resizes masks
    (torchvision's Resize of a `tv_tensors.Mask`: nearest neighbour). An object smaller than the sampling
    grid can vanish."""
    mask = tv_tensors.Mask(masks.as_subclass(torch.Tensor).to(torch.uint8))
    return v2.functional.resize(mask, [image_size, image_size]).as_subclass(torch.Tensor).bool()
