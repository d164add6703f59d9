"""The training step: a clip batch tracked with memory, prompts simulated — Meta's `SAM2Train.forward`.

The model is a `Sam2VideoModel` (same weights, same saved format) whose `forward` takes a clip batch and
returns, per frame, the predictions of every prediction step that `MultiStepMultiMasksAndIous` scores.
Tracking uses the same blocks as inference — the compute seam's four parts (`TorchBackend` over this model, with
gradients), the glue of tracking/heads.py and SAM 2's `ReferenceSelection` — with the reference's training-mode
differences: memory stride 1, object pointers
of every conditioning frame (future ones too), memories encoded from the masks' sigmoid, kept in fp32
with their gradients, and no hole filling.
"""

from __future__ import annotations

import numpy as np
import torch

from ..backends.torch import TorchBackend
from ..models.configuration import Sam2VideoConfig
from ..models.modeling import Sam2VideoModel
from ..models.outputs import FrameOutput, Sam2FrameFeatures, Sam2FramePrediction
from ..tracking import heads
from ..tracking.selection import ReferenceSelection
from ..tracking.storage import ObjectMemory
from .prompting import ClipPrompts, PromptSimulation, add_points, draw_clip_prompts, next_point


class Sam2VideoModelForTraining(Sam2VideoModel):
    """`Sam2VideoModel` with the training forward (Meta's `training.model.sam2.SAM2Train`).

    It loads and saves exactly as `Sam2VideoModel` (its `save_pretrained` names that architecture), so a
    fine-tuned folder loads in `Sam2VideoModel`, the predictors and stock transformers.

    Gradient checkpointing (`TrainingArguments(gradient_checkpointing=True)`, or `gradient_checkpointing_enable()`)
    recomputes the image encoder's Hiera blocks and the memory-attention layers (transformers'
    `GradientCheckpointingLayer`, non-reentrant `torch.utils.checkpoint`) in the backward pass instead of keeping
    their activations: the memory of clips with many frames and objects, for about one more forward pass.

    Attributes:
        prompt_simulation: how prompts are drawn per clip (`PromptSimulation`; default Meta's defaults,
            `PromptSimulation.meta_finetune()` for Meta's fine-tuning recipe). Set it with
            `set_prompt_simulation`, which also reseeds the draws.
        prompt_rng: the numpy generator of the prompt decisions (seeded with `prompt_simulation.seed`).
    """

    supports_gradient_checkpointing = True

    def __init__(self, config: Sam2VideoConfig, prompt_simulation: PromptSimulation | None = None):
        super().__init__(config)
        self.set_prompt_simulation(prompt_simulation or PromptSimulation())

    def set_prompt_simulation(self, prompt_simulation: PromptSimulation) -> None:
        """Use these prompt settings from the next batch on, with their seed."""
        self.prompt_simulation = prompt_simulation
        self.prompt_rng = np.random.default_rng(prompt_simulation.seed)

    def freeze_image_encoder(self) -> None:
        """Stop training the image encoder (Meta's `freeze_image_encoder=True`)."""
        self.vision_encoder.requires_grad_(False)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`Sam2VideoModel.save_pretrained`; config.json names the `Sam2VideoModel` architecture."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.config.architectures = [Sam2VideoModel.__name__]
            self.config.save_pretrained(save_directory)

    def forward(
        self,
        pixel_values: torch.Tensor,
        masks: torch.Tensor,
        obj_to_frame_idx: torch.Tensor,
        prompts: ClipPrompts | None = None,
    ) -> list[dict]:
        """Track a clip batch from simulated (or given) prompts.

        Args:
            pixel_values: (T, B, 3, S, S) normalized frames of B clips of T frames (S = config.image_size).
            masks: (T, O, S, S) bool ground-truth masks of the O objects of the batch.
            obj_to_frame_idx: (T, O, 2) long, per object [frame index, clip index in the batch] (the layout of
                Meta's `BatchedVideoDatapoint` and of `sam2_hf.training.data.collate_clips`).
            prompts: the clip's prompts; default drawn with `prompt_simulation` (training values in train mode).

        Returns:
            one dict per frame, in frame order, with Meta's keys: "multistep_pred_multimasks_high_res" (list over
            prediction steps of (O, M, S, S) logits), "multistep_pred_ious" (list of (O, M)),
            "multistep_object_score_logits" (list of (O, 1)), "multistep_point_inputs" (list of (coords, labels)
            or None), "pred_masks" (O, 1, S/4, S/4) and "pred_masks_high_res" (O, 1, S, S), the final step's.
        """
        num_frames = pixel_values.shape[0]
        if masks.shape[0] != num_frames or obj_to_frame_idx.shape[:2] != masks.shape[:2]:
            raise ValueError(
                f"pixel_values has {num_frames} frames, masks {tuple(masks.shape)}, obj_to_frame_idx "
                f"{tuple(obj_to_frame_idx.shape)}: expected (T, B, 3, S, S), (T, O, S, S) and (T, O, 2)."
            )
        backend = TorchBackend(self)
        features = backend.image_encoder.encode_frame(pixel_values.transpose(0, 1).flatten(0, 1))
        if prompts is None:
            prompts = draw_clip_prompts(self.prompt_simulation, masks, self.training, self.prompt_rng)
        image_index = obj_to_frame_idx[..., 1] * num_frames + obj_to_frame_idx[..., 0]  # into the (B*T) batch
        memory = ObjectMemory(policy="ram")  # the batch's objects tracked together: (O, ...) outputs
        selection = ReferenceSelection.from_config(self.config, stride=1, training=True)
        outputs = {}
        for t in prompts.processing_order:
            frame_features = features.select(image_index[t])
            outputs[t] = self.track_step(backend, selection, t, frame_features, prompts, memory, masks[t], num_frames)
        return [outputs[t] for t in range(num_frames)]

    def track_step(
        self,
        backend: TorchBackend,
        selection: ReferenceSelection,
        frame_idx: int,
        features: Sam2FrameFeatures,
        prompts: ClipPrompts,
        memory: ObjectMemory,
        gt_masks: torch.Tensor,
        num_frames: int,
    ) -> dict:
        """One frame of the clip: prediction from its prompt or from memory, corrective clicks, new memory.

        backend: the four parts over this model; selection: the memories a frame reads (SAM 2's, training mode);
        features: the frame's features for the O objects (batch O); gt_masks (O, S, S) bool. The frame's
        `FrameOutput` (O objects) is stored in `memory` (conditioning or not); returns the frame's dict
        (see `forward`).
        """
        is_init = frame_idx in prompts.init_cond_frames
        points = prompts.point_inputs.get(frame_idx)
        mask = prompts.mask_inputs.get(frame_idx)
        embeddings = None
        if mask is not None:
            steps = [heads.predict_from_mask_input(backend, features, mask)]
        else:
            if is_init:
                embeddings = backend.image_encoder.image_only_embedding(features.image_embeddings)
            else:
                selected = selection.select(memory, frame_idx, False, num_frames)
                embeddings = backend.memory_attention.condition_on_memory(features, [selected])
            steps = [self._decode(backend, embeddings, features, points, None, is_init)]
        if frame_idx in prompts.frames_to_add_correction_pt:
            steps, points = self._correct(backend, steps, embeddings, features, points, gt_masks.unsqueeze(1), is_init)
        final = steps[-1]
        out = FrameOutput(final.masks, final.object_pointer, final.object_score_logits, iou_score=final.iou_score)
        out.memory = backend.memory_encoder.encode_memory(features, final.high_res_masks, final.object_score_logits)
        corrected = frame_idx in prompts.frames_to_add_correction_pt
        if is_init or (corrected and self.prompt_simulation.add_all_frames_to_correct_as_cond):
            memory.cond[frame_idx] = out
        else:
            memory.non_cond[frame_idx] = out
        return self._frame_dict(steps, points)

    def _correct(self, backend, steps, embeddings, features, points, gt_masks, is_init):
        """`num_correction_pt_per_frame` corrective clicks, each from the latest prediction's error, each
        decoded with the clicks so far and the previous low-resolution mask (Meta's `_iter_correct_pt_sampling`)."""
        sim = self.prompt_simulation
        method = "uniform" if self.training else sim.pt_sampling_for_eval
        for _ in range(sim.num_correction_pt_per_frame):
            from_gt = (
                self.training
                and sim.prob_to_sample_from_gt_for_train > 0
                and (self.prompt_rng.random() < sim.prob_to_sample_from_gt_for_train)
            )
            previous = steps[-1]
            coords, labels = next_point(gt_masks, None if from_gt else previous.high_res_masks > 0, method)
            points = add_points(points, coords, labels)
            steps.append(self._decode(backend, embeddings, features, points, previous.masks, is_init))
        return steps, points

    def _decode(self, backend, embeddings, features, points, mask_inputs, is_init) -> Sam2FramePrediction:
        """Mask decoder on (memory-conditioned) embeddings with the clicks so far and a previous mask."""
        coords, labels = points if points is not None else (None, None)
        multimask = heads.use_multimask(self.config, is_init, 0 if labels is None else labels.shape[1])
        return heads.predict_masks(
            backend, embeddings, features.high_res_features, coords, labels, mask_inputs, multimask
        )

    def _frame_dict(self, steps: list[Sam2FramePrediction], points) -> dict:
        """Meta's per-frame training outputs from the prediction steps."""
        high_res_multimasks = [
            s.high_res_masks
            if s.multimasks.shape[1] == 1
            else heads.upscale_to_input_size(s.multimasks, self.config.image_size)
            for s in steps
        ]
        return {
            "multistep_pred_multimasks_high_res": high_res_multimasks,
            "multistep_pred_ious": [s.iou_scores for s in steps],
            "multistep_object_score_logits": [s.object_score_logits for s in steps],
            "multistep_point_inputs": points,
            "pred_masks": steps[-1].masks,
            "pred_masks_high_res": steps[-1].high_res_masks,
        }
