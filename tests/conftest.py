import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py

from reference import build_meta_model, save_meta_checkpoint

torch.set_num_threads(int(os.environ.get("SAM2_HF_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class MetaReference:
    """One configuration of Meta's reference SAM 2 with seeded random weights, its `.pt`, and ours loaded from it.

    - `path`: the Meta-format `.pt` (`{"model": state_dict}`), written once per session by the first model built;
    - `meta`: Meta's model, built once and shared by every test that asks for it: read it, never change it
      (no attribute patches, no backward into its weights);
    - `new_meta()`: a Meta model with the same weights that nothing else holds: safe to mutate, freed when
      the caller drops it (also the choice for a model used once, so the session does not keep it);
    - `load(cls=Sam2VideoModel, **kwargs)`: ours, `cls.from_pretrained(path, image_size=image_size, **kwargs)`,
      loaded fresh on every call (any class or predictor with a `from_pretrained` that reads a Meta `.pt`).

    Building a model leaves the global torch seed as the test left it, so results do not depend on whether
    an earlier test already built this configuration.
    """

    def __init__(self, directory: Path, size, version, image_size, video, seed, object_score_bias):
        self.size, self.version, self.image_size = size, version, image_size
        self.video, self.seed, self.object_score_bias = video, seed, object_score_bias
        release = "sam2" if version == "2" else "sam2.1"
        self._path = directory / f"{release}_hiera_{size.replace('-', '_')}.pt"  # named like Meta's release files
        self._meta = None

    def __repr__(self):
        video = ", video" if self.video else ""
        return f"MetaReference({self.size} {self.version} @{self.image_size}px{video}, seed {self.seed})"

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
        if not self._path.exists():
            save_meta_checkpoint(model, self._path)
        return model

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


@pytest.fixture(scope="session")
def reference_models(tmp_path_factory):
    """`reference_models(size="tiny", version="2.1", image_size=1024, *, video=False, seed=0, object_score_bias=4.0)`
    -> the session's `MetaReference` for those arguments (one per argument tuple; see `reference.build_meta_model`
    for what they mean). Nothing is built until the reference's `path`, `meta`, `new_meta()` or `load()` is used.
    """
    references = {}

    def reference(size="tiny", version="2.1", image_size=1024, *, video=False, seed=0, object_score_bias=4.0):
        key = (size, str(version), int(image_size), bool(video), int(seed), float(object_score_bias))
        if key not in references:
            name = f"meta-{size}-{version}-{image_size}px{'-video' if video else ''}-seed{seed}-"
            references[key] = MetaReference(tmp_path_factory.mktemp(name), *key)
        return references[key]

    return reference
