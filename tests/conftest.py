import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py

from reference import build_meta_model, save_meta_checkpoint

torch.set_num_threads(int(os.environ.get("SAM2_HF_TEST_THREADS", "2")))
# The CLI and the Space run on backend "auto" (the fastest exact backend installed, which exports the model once per
# weights); the tests run them on the model itself unless a test says otherwise (tests/test_export.py tests "auto").
os.environ.setdefault("SAM2_HF_BACKEND", "torch")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


SAM21_ONLY_PARAMETERS = {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}


class MetaReference:
    """One configuration of Meta's reference SAM 2 with seeded random weights, its `.pt`, and ours loaded from it.

    - `path`: the Meta-format `.pt` (`{"model": state_dict}`), written once per session by the first model built;
    - `meta`: Meta's model, built once and shared by every test that asks for it: read it, never change it
      (no attribute patches, no backward into its weights);
    - `new_meta()`: a Meta model with the same weights that nothing else holds: safe to mutate, freed when
      the caller drops it (also the choice for a model used once, so the session does not keep it);
    - `load(cls=Sam2VideoModel, **kwargs)`: ours, `cls.from_pretrained(path, image_size=image_size, **kwargs)`,
      loaded fresh on every call (any class or predictor with a `from_pretrained` that reads a Meta `.pt`).

    With `content=True` the weights are the content-bearing ones of tests/content_weights.py (made on ours from
    the random weights and the stored trained mask decoder, written to `path`, loaded into every Meta model),
    and `content_properties` holds what `check_content_bearing` measured on them; building asserts those
    properties. SAM 2's are SAM 2.1's (the
    same size and seed) less `SAM21_ONLY_PARAMETERS`: trained on SAM 2 itself, the decoder learns the clicks and
    not the memory, while SAM 2.1's weights pass the same checks in SAM 2's model (object pointers without
    temporal encoding, no spatial no-object embedding).

    Building a model leaves the global torch seed as the test left it, so results do not depend on whether
    an earlier test already built this configuration.
    """

    def __init__(
        self, directory: Path, size, version, image_size, video, seed, object_score_bias, content, content_from=None
    ):
        self.size, self.version, self.image_size = size, version, image_size
        self.video, self.seed, self.object_score_bias, self.content = video, seed, object_score_bias, content
        self.content_from = content_from  # SAM 2 (content=True): the SAM 2.1 MetaReference whose weights it takes
        release = "sam2" if version == "2" else "sam2.1"
        self._path = directory / f"{release}_hiera_{size.replace('-', '_')}.pt"  # named like Meta's release files
        self._meta = None
        self.content_properties: dict | None = None  # check_content_bearing's measurements (content=True)

    def __repr__(self):
        video = ", video" if self.video else ""
        content = ", content-bearing" if self.content else ""
        return f"MetaReference({self.size} {self.version} @{self.image_size}px{video}{content}, seed {self.seed})"

    def new_meta(self):
        with torch.random.fork_rng(devices=[]):
            model = build_meta_model(
                self.size,
                self.version,
                self.image_size,
                seed=self.seed,
                object_score_bias=self.object_score_bias,
                video=self.video,
            )
            if self.content:
                if not self._path.exists():
                    self._write_content_bearing(model)
                model.load_state_dict(torch.load(self._path)["model"])
        if not self._path.exists():
            save_meta_checkpoint(model, self._path)
        return model

    def _write_content_bearing(self, random_meta) -> None:
        """Make ours from `random_meta`'s weights content-bearing, check it, and write it to `path`."""
        from content_weights import check_content_bearing, make_content_bearing
        from sam2_hf import Sam2VideoModel
        from sam2_hf.models.checkpoint import write_meta_checkpoint
        from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

        random_path = self._path.with_name("random-" + self._path.name)
        if self.content_from is not None:  # SAM 2: the SAM 2.1 weights, less the parameters only SAM 2.1 has
            unused = random_meta.load_state_dict(torch.load(self.content_from.path)["model"], strict=False)
            assert not unused.missing_keys and set(unused.unexpected_keys) == SAM21_ONLY_PARAMETERS, unused
        save_meta_checkpoint(random_meta, random_path)
        ours = Sam2VideoModel.from_pretrained(random_path, image_size=self.image_size)
        random_path.unlink()
        if self.content_from is None:
            self.content_properties = make_content_bearing(ours)
        else:
            self.content_properties = check_content_bearing(Sam2VideoPredictor(ours, fill_hole_area=0))
        write_meta_checkpoint(ours, self._path)

    @property
    def meta(self):
        if self._meta is None:
            self._meta = self.new_meta()
        return self._meta

    @property
    def path(self) -> Path:
        if not self._path.exists():
            self.new_meta()
        return self._path

    def load(self, cls=None, **kwargs):
        if cls is None:
            from sam2_hf import Sam2VideoModel as cls
        kwargs.setdefault("image_size", self.image_size)
        return cls.from_pretrained(self.path, **kwargs)

    def release(self):
        """Free the disk and memory this reference holds (its `.pt` and shared Meta model); both are built
        again, with the same weights, if it is used later."""
        self._path.unlink(missing_ok=True)
        self._meta = None


class MetaReferences:
    """The session's `MetaReference`s, one per argument tuple (the `reference_models` fixture)."""

    def __init__(self, tmp_path_factory):
        self._tmp_path_factory = tmp_path_factory
        self._references: dict[tuple, MetaReference] = {}

    def __call__(
        self, size="tiny", version="2.1", image_size=1024, *, video=False, seed=0, object_score_bias=4.0, content=False
    ):
        key = (size, str(version), int(image_size), bool(video), int(seed), float(object_score_bias), bool(content))
        if key not in self._references:
            kind = ("-video" if video else "") + ("-content" if content else "")
            name = f"meta-{size}-{version}-{image_size}px{kind}-seed{seed}-"
            content_from = None
            if content and str(version) == "2":
                content_from = self(
                    size, "2.1", image_size, video=video, seed=seed, object_score_bias=object_score_bias, content=True
                )
            self._references[key] = MetaReference(self._tmp_path_factory.mktemp(name), *key, content_from)
        return self._references[key]

    def release_larger_than_tiny(self):
        for reference in self._references.values():
            if reference.size != "tiny":
                reference.release()


@pytest.fixture(scope="session")
def reference_models(tmp_path_factory):
    """`reference_models(size="tiny", version="2.1", image_size=1024, *, video=False, seed=0, object_score_bias=4.0,
    content=False)` -> the session's `MetaReference` for those arguments (one per argument tuple; see
    `reference.build_meta_model` for what they mean, `MetaReference` for `content`). Nothing is built until the
    reference's `path`, `meta`, `new_meta()` or `load()` is used.
    """
    return MetaReferences(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def _release_large_references(reference_models):
    """The tiny references serve every module; the larger ones (up to 0.9 GB of `.pt` each) are freed when the
    module that built them ends, so a whole run's temporary files stay a few GB (CI disks are not large)."""
    yield
    reference_models.release_larger_than_tiny()


@pytest.fixture(scope="session")
def davis_folder(tmp_path_factory):
    """A generated DAVIS-style dataset (tests/test_evaluation*.py): `root/JPEGImages/<seq>/00000.jpg, ...` and
    `root/Annotations/<seq>/00000.png, ...` (palette PNGs on every frame: 1 the red disc, 2 the blue square,
    3 the green square of `synthetic_clip`); sequences "shapes" (6 frames) and "shapes-b" (5), 64 x 96."""
    import numpy as np

    from sam2_hf.evaluation.layout import DAVIS_PALETTE, put_per_obj_mask, save_ann_png
    from sam2_hf.media.synthetic import save_jpeg_folder, synthetic_clip

    root = tmp_path_factory.mktemp("davis")
    colors = {1: (220, 40, 40), 2: (40, 60, 220), 3: (40, 200, 60)}
    for name, num_frames, seed in (("shapes", 6, 0), ("shapes-b", 5, 1)):
        frames = synthetic_clip(num_frames=num_frames, height=64, width=96, seed=seed)
        save_jpeg_folder(frames, root / "JPEGImages" / name)
        (root / "Annotations" / name).mkdir(parents=True)
        for t, frame in enumerate(frames):
            masks = {k: np.all(frame == color, axis=-1) for k, color in colors.items()}
            save_ann_png(root / "Annotations" / name / f"{t:05d}.png", put_per_obj_mask(masks, 64, 96), DAVIS_PALETTE)
    return root


@pytest.fixture(scope="session")
def video_reference(reference_models):
    """`video_reference(version="2.1", content=False)` -> the `MetaReference` (tiny, 256 px, video predictor)
    that the video parity tests, the seeded-bug ledger and the half-precision video checks compare on:
    the content-bearing weights with `content=True` (tests/content_weights.py), else the seeded random ones."""
    return lambda version="2.1", content=False: reference_models("tiny", version, 256, video=True, content=content)


@pytest.fixture(scope="session")
def detector():
    """transformers' object-detection pipeline on a tiny random DETR (4 queries, classes cat / dog): the detector of
    tests/test_annotate.py and of the batch jobs' "detector" rows (tests/test_batch.py, saved to a folder)."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig, pipeline

    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8] * 4, depths=[1] * 4, out_features=["stage4"])
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone, num_queries=4, d_model=16,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, id2label={0: "cat", 1: "dog"},
    )  # fmt: skip
    torch.manual_seed(0)
    model = DetrForObjectDetection(config).eval()
    return pipeline(
        "object-detection",
        model=model,
        image_processor=DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
    )
