"""Content-bearing test weights: seeded random SAM 2 weights changed so that the video path does real work.

On plain random weights (`reference.build_meta_model`) every tracked object gets the same image-wide mask,
object scores sit on the +4 bias and the memory barely moves a logit, so a video parity test on them cannot
see a memory bug. `make_content_bearing` changes such a model, in place, into one on which, for the clip of
`clip_with_masks` tracked from one click per object (`check_content_bearing` measures and asserts it):

- tracked objects are distinct: pairwise mask IoU < 0.5 on every tracked frame;
- object scores say present where the clip shows the object and absent where it hides it (`SCORE_AGREEMENT`);
- mask logits span well beyond +-1;
- the memory matters: bypassing the memory attention changes > 10 % of the tracked mask pixels.

How (every weight keeps its random part; the changes are few and named):

0. Vision neck: the stride-16 image embedding is scaled down (`EMBEDDING_GAIN`), so in the mask decoder the
   image position encoding outweighs the random content and a click selects the object under it (at full
   scale no click changes which object the decoder picks, even after training).
1. Memory encoder: the mask downsampler's output is amplified (`MASK_GAIN`), so a memory says mostly
   "where the object was".
2. Memory attention: every attention (self and cross, all layers) gets query and key biases on RoPE's
   highest-frequency channel pairs (`rope_locality`), so a position attends to the same place in the
   memories as in the frame: the memory says, per position, whether the object was there. The later
   residual branches are scaled down (`LATER_LAYERS_GAIN`) so they do not wash that out.
3. Mask decoder: trained for a few hundred Adam steps (`RECIPES`) with the project's losses (`sam2_hf.training.losses`:
   focal x20 + dice + IoU on the best of the three multimask outputs, and the object score's cross-entropy) on
   the clip, teacher-forced: the memory-conditioned features come from ground-truth memories, plus one click
   per visible object on each frame's memory-free features. Only the decoder learns.

The result depends on the float rounding of the machine's torch kernels: `check_content_bearing` runs wherever
the weights are used, so weights that come out trivial fail loudly. `RECIPES` are tried in order until one gives
all four properties: the first passed on the machines of 2026-11/12 (IoU 0.10, 94 % score agreement) but not on
an AVX512 Xeon of 2026-12-06 (IoU 0.74, no absence detected, the same with AVX2 forced; seeds 1-5, 150/600 steps,
other learning rates and absence weights failed there too), where the second holds (IoU 0.43, 97 %, 6 absences).
Its weights track less well than the first's: there, six non-vacuity checks calibrated on the first recipe's
weights fail (test_evaluation_vos's tool loop x3, test_transformers_video_api's later object,
test_video_transformers_parity x2: too few objects found on the tracked frames). Storing a trained decoder as
test data would end this.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDING_GAIN = 0.1  # stride-16 image embedding scale (vision neck), so the decoder's position encoding leads
MASK_GAIN = 200.0  # mask downsampler output scale (memory encoder)
ROPE_BIAS = 15.0  # query / key bias on the local RoPE channels (memory attention)
ROPE_PAIRS = 16  # RoPE channel pairs per axis given that bias (the highest frequencies)
LATER_LAYERS_GAIN = 0.1  # residual branches after the first memory cross-attention
DECODER_LR = 3e-4  # 1e-3 collapses every object onto one mask after a few hundred steps
# (Adam steps, decoder calls per step (one frame's objects each)) of the mask decoder's training, tried in order
RECIPES = ((300, 6), (450, 12))
ABSENT_EMPHASIS = 3.0  # absent objects weigh 3x the present ones, in total, in the object-score loss
CLIP = dict(num_frames=12, height=96, width=128, seed=0)  # `synthetic_clip` arguments (test_video_parity's clip)
COLORS = ((220, 40, 40), (40, 60, 220), (40, 200, 60))  # `synthetic_clip`'s objects, in object-id order 1, 2, 3
SCORE_AGREEMENT = 0.9  # fraction of (object, frame) whose object-score sign matches visibility, at least
DISTINCT_IOU = 0.5  # tracked objects are distinct: pairwise mask IoU below this


def make_content_bearing(model, recipes=RECIPES, seed: int = 0) -> dict:
    """Change a random-weight `Sam2VideoModel` as the module docstring says, in place, with the first of `recipes`
    ((steps, minibatch) of the decoder's training) that gives every property (AssertionError naming the last one's
    problems when none does); -> `check_content_bearing`'s measurements and the recipe used. The model ends in eval
    mode.

    model: fp32, CPU, any SAM 2 / 2.1 size (tested: tiny at image size 256). seed: the minibatch draws. About
    0.35 s per step of 6 samples for tiny at 256 px on 2 CPU cores.
    """
    from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

    quiet_image_embedding(model)
    amplify_mask_in_memory(model)
    localize_memory_attention(model)
    with torch.no_grad():
        samples = teacher_forced_samples(model)
    untrained = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    for steps, minibatch in recipes:
        model.mask_decoder.load_state_dict(untrained)
        train_mask_decoder(model, samples, steps, seed, minibatch=minibatch)
        properties = measure_content(Sam2VideoPredictor(model.eval(), fill_hole_area=0))
        if not properties.problems():
            break
    return {**require_content_bearing(properties), "recipe": {"steps": steps, "minibatch": minibatch}}


def quiet_image_embedding(model, gain: float = EMBEDDING_GAIN) -> None:
    """Scale the stride-16 image embedding (the vision neck's two coarsest lateral convolutions, which the FPN
    sums into it); the stride-4 and stride-8 features the decoder upsamples with keep their scale."""
    with torch.no_grad():
        for conv in model.vision_encoder.neck.convs[:2]:
            conv.weight.mul_(gain)
            conv.bias.mul_(gain)


def amplify_mask_in_memory(model, gain: float = MASK_GAIN) -> None:
    """Scale the mask downsampler's output: the memory features are then mostly the (downsampled) mask."""
    final = model.memory_encoder.mask_downsampler.final_conv
    with torch.no_grad():
        final.weight.mul_(gain)
        final.bias.mul_(gain)


def rope_locality(attention, bias: float = ROPE_BIAS, pairs: int = ROPE_PAIRS) -> None:
    """Query and key biases `bias` on the first (highest-frequency) `pairs` RoPE channel pairs of each axis,
    with those channels' weights zeroed: the attention scores gain `bias^2 / sqrt(d) * sum_i cos(w_i dx) +
    cos(w_i dy)`, which peaks sharply where query and key positions coincide (dx = dy = 0). SAM 2's memory
    attention has one head; RoPE's layout (`axial_rope_tables`): pair i < d/4 rotates with x, d/4 + i with y."""
    width = attention.q_proj.out_features
    channels = torch.zeros(width, dtype=torch.bool)
    for i in range(pairs):
        channels[2 * i] = channels[2 * (width // 4 + i)] = True
    with torch.no_grad():
        for projection in (attention.q_proj, attention.k_proj):
            projection.bias[channels] = bias
            projection.weight[channels] = 0.0


def localize_memory_attention(model, later_gain: float = LATER_LAYERS_GAIN) -> None:
    """Every memory-attention layer's self- and cross-attention attends locally (`rope_locality`); the
    residual branches after the first cross-attention are scaled by `later_gain`."""
    for i, layer in enumerate(model.memory_attention.layers):
        rope_locality(layer.self_attn)
        rope_locality(layer.cross_attn_image)
        quieter = [layer.linear2, layer.self_attn.o_proj] + ([layer.cross_attn_image.o_proj] if i else [])
        with torch.no_grad():
            for module in quieter:
                module.weight.mul_(later_gain)
                module.bias.mul_(later_gain)


def clip_with_masks(jpeg: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`synthetic_clip(**CLIP)` frames (T, H, W, 3) uint8 and its objects' masks (T, 3, H, W) bool, object ids
    1 the red disc, 2 the blue square (behind the grey bar in the middle frames), 3 the green square (out of
    the frame in frames 3-8). jpeg: the frames as read back from `save_jpeg_folder`'s files (what the video
    parity tests give both predictors); else the generated arrays."""
    from sam2_hf.media.synthetic import synthetic_clip

    frames = synthetic_clip(**CLIP)
    masks = np.stack([np.all(frames == np.array(color, np.uint8), axis=-1) for color in COLORS], axis=1)
    return (jpeg_round_trip(frames) if jpeg else frames), masks


def jpeg_round_trip(frames: np.ndarray) -> np.ndarray:
    """Frames as `save_jpeg_folder` writes them (JPEG quality 95) and PIL reads them back."""
    from PIL import Image

    decoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(decoded)


def deepest_pixels(masks: np.ndarray) -> list[tuple[int, int]]:
    """(K, H, W) bool masks -> each mask's pixel farthest from its border, as (x, y) in pixels."""
    from scipy.ndimage import distance_transform_edt

    points = []
    for mask in masks:
        y, x = np.unravel_index(distance_transform_edt(mask).argmax(), mask.shape)
        points.append((int(x), int(y)))
    return points


def teacher_forced_samples(model) -> list[tuple]:
    """Decoder inputs and targets from `clip_with_masks`, both its JPEG and its array frames (a decoder trained on
    one rendering alone does not carry over to the other), at the model's image size S:

    - per frame t >= 1, the 3 objects' memory-conditioned features, their memories encoded from the ground
      truth of frame 0 (conditioning) and of the up to `num_maskmem - 1` frames before t, as tracking reads
      them (no object pointers); no prompt;
    - per frame, the memory-free features of each visible object with one click at its deepest pixel.

    -> [(embeddings (N, C, S/16, S/16), high-res features, points (N, 1, 2) in S-pixels or None,
    target masks (N, S/4, S/4) bool)].
    """
    from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

    predictor = Sam2VideoPredictor(model)  # its session reads frames as every video predictor run does
    samples = []
    for jpeg in (True, False):
        frames, masks = clip_with_masks(jpeg)
        state = predictor.init_state(frames)
        features = [model.encode_frame(state.pixel_values(t)) for t in range(len(frames))]
        samples += clip_samples(model, features, masks)
    return samples


def clip_samples(model, features: list, masks: np.ndarray) -> list[tuple]:
    """`teacher_forced_samples` of one rendering: features, the frames' `encode_frame` outputs; masks (T, 3, H, W)."""
    from sam2_hf.models.outputs import FrameOutput, MemorySelection

    size = model.config.image_size
    num_frames = len(features)
    targets = F.interpolate(torch.from_numpy(masks).float(), size=(size, size), mode="nearest")  # (T, 3, S, S)
    present = targets.flatten(2).any(2)  # (T, 3)
    objects = torch.zeros(3, dtype=torch.long)
    memories = [
        model.encode_memory(features[t].select(objects), targets[t][:, None] * 20 - 10, present[t][:, None] * 2.0 - 1)
        for t in range(num_frames)
    ]
    low_res = F.interpolate(targets, size=(size // 4, size // 4), mode="area") > 0.5  # (T, 3, S/4, S/4)
    num_maskmem = model.config.num_maskmem
    samples = []
    for t in range(num_frames):
        if t:
            selections = []
            for k in range(3):
                spatial = [(0, FrameOutput(None, None, None, memories[0][k : k + 1]))]
                spatial += [  # temporal index num_maskmem - d for the frame d back, as `ReferenceSelection.select`
                    (num_maskmem - d, FrameOutput(None, None, None, memories[t - d][k : k + 1]))
                    for d in range(1, min(t - 1, num_maskmem - 1) + 1)
                ]
                selections.append(MemorySelection(spatial, [], num_frames))
            conditioned = torch.cat([model.condition_on_memory(features[t], [s]) for s in selections])
            high_res = [f.expand(3, -1, -1, -1) for f in features[t].high_res_features]
            samples.append((conditioned, high_res, None, low_res[t]))
        visible = present[t].nonzero()[:, 0].tolist()
        if visible:
            points = torch.tensor(deepest_pixels(targets[t, visible].bool().numpy()), dtype=torch.float32)
            embeddings = model.image_only_embedding(features[t].image_embeddings).expand(len(visible), -1, -1, -1)
            high_res = [f.expand(len(visible), -1, -1, -1) for f in features[t].high_res_features]
            samples.append((embeddings, high_res, points[:, None], low_res[t, visible]))
    return samples


def train_mask_decoder(
    model, samples: list[tuple], steps: int, seed: int = 0, lr: float = DECODER_LR, minibatch: int = 6
) -> None:
    """Adam on the mask decoder alone, `minibatch` samples per step (drawn with `seed`): per object the best of
    the 3 multimask outputs by focal (x20) + dice, plus its IoU loss (all `sam2_hf.training.losses`), counted
    where the object is visible, plus the object score's binary cross-entropy everywhere, absent objects weighted
    up to as much in total as present ones."""
    from sam2_hf.training.losses import dice_loss, focal_loss, iou_loss

    decoder = model.mask_decoder
    learning = {id(p) for p in decoder.parameters()}
    frozen = [p for p in model.parameters() if id(p) not in learning and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    present_count = sum(int(masks.flatten(1).any(1).sum()) for *_, masks in samples)
    absent_count = sum(len(masks) for *_, masks in samples) - present_count
    absent_weight = ABSENT_EMPHASIS * present_count / max(absent_count, 1)  # the clip hides objects on few frames
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    try:
        for _ in range(steps):
            loss = 0.0
            for i in rng.choice(len(samples), size=min(minibatch, len(samples)), replace=False):
                embeddings, high_res, points, masks = samples[i]
                labels = None if points is None else torch.ones(points.shape[:2], dtype=torch.long)
                out = model.decode(embeddings, high_res, points, labels, multimask_output=True)
                target = masks[:, None].float().expand_as(out.masks)
                present = masks.flatten(1).any(1).float()
                per_mask = 20 * focal_loss(out.masks, target, 1.0) + dice_loss(out.masks, target, 1.0)
                per_mask = per_mask + iou_loss(out.masks, target, out.iou_scores, 1.0)
                best = per_mask.argmin(1, keepdim=True)
                loss = loss + (per_mask.gather(1, best)[:, 0] * present).sum()
                scores = out.object_score_logits[:, 0]
                weight = present + (1 - present) * absent_weight
                loss = loss + F.binary_cross_entropy_with_logits(scores, present, weight, reduction="sum")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.eval()


@dataclass(frozen=True)
class ContentProperties:
    """What `check_content_bearing` measured on `clip_with_masks`, objects clicked on frame 0 and tracked."""

    max_pairwise_iou: float  # over every tracked frame and pair of objects
    score_agreement: float  # fraction of (object, tracked frame) whose score sign matches visibility
    absent_detected: int  # (object, frame) pairs hidden by the clip and scored absent
    logit_q01: float
    logit_q99: float
    memory_off_changed: float  # changed pixels / foreground pixels, memory attention bypassed

    def problems(self) -> list[str]:
        """The properties that do not hold (empty when the weights are content-bearing)."""
        out = []
        if not self.max_pairwise_iou < DISTINCT_IOU:
            out.append(f"tracked objects overlap: pairwise IoU {self.max_pairwise_iou:.2f} >= {DISTINCT_IOU}")
        if not self.score_agreement >= SCORE_AGREEMENT or not self.absent_detected:
            out.append(
                f"object scores do not follow visibility: {self.score_agreement:.0%} agree "
                f"(>= {SCORE_AGREEMENT:.0%} needed), {self.absent_detected} absences detected"
            )
        if not (self.logit_q01 < -1 and self.logit_q99 > 1):
            out.append(f"logits do not span +-1: q01 {self.logit_q01:.2f}, q99 {self.logit_q99:.2f}")
        if not self.memory_off_changed > 0.1:
            out.append(f"memory barely matters: bypassing it changes {self.memory_off_changed:.1%} of mask pixels")
        return out


def track_clip(predictor, frames: np.ndarray, masks: np.ndarray, memory: bool = True):
    """Objects 1..3 clicked once each on frame 0 (the deepest pixel of `masks[0]`) and tracked forward through
    `frames` by `predictor` (ours) -> mask logits (T, 3, H, W) fp32 at video resolution and object score logits
    (T - 1, 3) of the tracked frames. memory=False bypasses the memory attention (every frame gets its
    memory-free features)."""
    model = predictor.model
    if not memory:
        model.condition_on_memory = lambda features, selections: model.image_only_embedding(
            features.image_embeddings
        ).expand(len(selections), -1, -1, -1)
    try:
        state = predictor.init_state(frames)
        for k, point in enumerate(deepest_pixels(masks[0])):
            predictor.add_new_points_or_box(state, 0, k + 1, points=[point], labels=[1])
        logits = torch.stack([m[:, 0].float() for _, _, m in predictor.propagate_in_video(state)])
    finally:
        if not memory:
            del model.condition_on_memory
    scores = torch.tensor(
        [[float(state.object(k).memory.get(t).object_score_logits) for k in (1, 2, 3)] for t in range(1, len(frames))]
    )
    return logits, scores


def measure_content(predictor) -> ContentProperties:
    """Track `clip_with_masks` with `predictor` (ours, fill_hole_area=0 for a comparison with Meta's CPU run),
    with and without memory attention, and measure the module docstring's properties."""
    frames, masks = clip_with_masks()
    with torch.inference_mode():
        logits, scores = track_clip(predictor, frames, masks)
        without_memory, _ = track_clip(predictor, frames, masks, memory=False)
    foreground = (logits > 0).numpy()
    ious = [
        (foreground[t, a] & foreground[t, b]).sum() / max((foreground[t, a] | foreground[t, b]).sum(), 1)
        for t in range(1, len(foreground))
        for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    visible = torch.from_numpy(masks[1:].any(axis=(2, 3)))  # (T - 1, 3)
    changed = ((logits > 0) != (without_memory > 0)).sum() / max(int((logits > 0).sum()), 1)
    return ContentProperties(
        max_pairwise_iou=float(max(ious)),
        score_agreement=float(((scores > 0) == visible).float().mean()),
        absent_detected=int(((scores <= 0) & ~visible).sum()),
        logit_q01=float(logits.quantile(0.01)),
        logit_q99=float(logits.quantile(0.99)),
        memory_off_changed=float(changed),
    )


def distinct_where_both_found(foregrounds) -> int:
    """foregrounds: per tracked frame, the (2, H, W) bool masks of two objects (a comparison's own output on
    these weights). Asserts their IoU is below DISTINCT_IOU on every frame where both are found; -> how many
    such frames (a parity test asserts there are enough: its compared path is not trivial)."""
    from sam2_hf.evaluation.metrics import db_eval_iou

    both = [(a, b) for a, b in foregrounds if a.any() and b.any()]
    for a, b in both:
        assert db_eval_iou(a, b) < DISTINCT_IOU, "two tracked objects get the same mask"
    return len(both)


def check_content_bearing(predictor) -> dict:
    """Assert `measure_content(predictor)` has every property (AssertionError naming those that fail);
    -> the measured values as a dict."""
    return require_content_bearing(measure_content(predictor))


def require_content_bearing(properties: ContentProperties) -> dict:
    """Assert `properties` has every property (AssertionError naming those that fail); -> them as a dict."""
    assert not properties.problems(), f"weights not content-bearing: {properties.problems()} ({properties})"
    return asdict(properties)
