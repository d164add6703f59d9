"""Loading models once, and running them at a lower input size for speed.

A SAM 2 model's weights fit any input size that is a multiple of 32 (the Hiera position embedding
is interpolated, the RoPE tables recomputed), so a faster variant is the same weights in a model
built for a smaller `image_size`; the variants share the weight tensors, so they cost no memory.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch
from huggingface_hub import model_info, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

from sam2_hf import Sam2VideoConfig, Sam2VideoModel, Sam2VideoPredictor
from sam2_hf.backends import make_backend
from sam2_hf.models.checkpoint import infer_size_and_version

from . import UserError
from .config import MODEL_ENV, RANDOM_MODEL


class ModelLoadError(UserError):
    """The model could not be loaded; the message says why and what to do."""


HUB_TIMEOUT = 10.0  # seconds to wait for the Hub before saying it cannot be reached (a download retries for ~47 s)
SAM2_MODEL_TYPES = ("sam2", "sam2_video")  # config.json model types of SAM 2 / 2.1 models (ours and transformers')


def looks_local(spec: str) -> bool:
    """`spec` names a file or folder (a Meta .pt, a path, something that exists), not a Hub id."""
    return spec.endswith((".pt", ".pth")) or spec.startswith((".", "/", "~")) or Path(spec).exists()


def check_spec(spec: str) -> None:
    """Say quickly and plainly what cannot be a SAM 2 model, before any download (ModelLoadError): a folder whose
    config is another kind of model; a Hub id that is malformed, missing or private, gated, or of another kind
    of model; the Hub out of reach (one request of at most `HUB_TIMEOUT` s, not a download's retries). A Hub id
    already in the local cache is judged by its cached config, offline."""
    if spec == RANDOM_MODEL or (looks_local(spec) and not Path(spec).expanduser().is_dir()):
        return  # a .pt, or nothing there: `load_model` / `load_error_message` deal with it
    if looks_local(spec):
        config = Path(spec).expanduser() / "config.json"
        model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    else:
        model_type = _hub_model_type(spec)
    if model_type is not None and model_type not in SAM2_MODEL_TYPES:
        raise ModelLoadError(f"{spec!r} is not a SAM 2 model (its config says {model_type!r}); pick a SAM 2 / 2.1 one.")


def _hub_model_type(spec: str) -> str | None:
    """The model type in Hub model `spec`'s config (cached or asked of the Hub); ModelLoadError when it cannot be
    had."""
    cached = try_to_load_from_cache(spec, "config.json") if "/" in spec else None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()).get("model_type")
    try:
        info = model_info(spec, timeout=HUB_TIMEOUT)
    except HFValidationError:
        raise ModelLoadError(f"{spec!r} is neither a Hub model id (owner/name), a folder nor a .pt file.") from None
    except GatedRepoError:
        raise ModelLoadError(
            f"{spec!r} is a gated model: accept its terms on the Hub and give the app a token (HF_TOKEN)."
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"There is no model {spec!r} on the Hugging Face Hub, or it is private (a private one needs HF_TOKEN)."
        ) from None
    except Exception as e:  # no network, DNS, timeout, Hub errors: the same advice as for a failed download
        raise ModelLoadError(load_error_message(spec, OSError(str(e)))) from None
    return (info.config or {}).get("model_type")


def load_error_message(spec: str, error: Exception) -> str:
    if looks_local(spec) and not Path(spec).expanduser().exists():
        return f"There is no model folder or checkpoint at {spec!r}."
    if isinstance(error, OSError) and not looks_local(spec):
        return (
            f"Could not download the model {spec!r} from the Hugging Face Hub (no internet connection?). "
            "Point the app at local weights instead: `python app.py --model /path/to/folder` (a Hub snapshot or a "
            "folder saved with save_pretrained) or `--model /path/to/sam2.1_hiera_tiny.pt` (a Meta checkpoint); "
            f"the environment variable {MODEL_ENV} does the same."
        )
    return f"Could not load the model {spec!r}: {error}"


RANDOM_OBJECT_SCORE_BIAS = 4.0  # added to the untrained object-score logit, so clicked objects show masks


def load_model(spec: str) -> Sam2VideoModel:
    """The model `spec` names; RANDOM_MODEL is SAM 2.1 tiny (input size 1024) with seeded random weights."""
    if spec != RANDOM_MODEL:
        check_spec(spec)
        return Sam2VideoModel.from_pretrained(spec)
    with torch.random.fork_rng(devices=[]):  # the same weights every start, the caller's random state untouched
        torch.manual_seed(0)
        model = Sam2VideoModel(Sam2VideoConfig.from_size("tiny", "2.1"))
    with torch.no_grad():  # untrained weights judge every object absent (empty masks); say present instead
        model.mask_decoder.pred_obj_score_head.proj_out.bias += RANDOM_OBJECT_SCORE_BIAS
    return model


class ModelStore:
    """Models by spec (Hub id, folder, Meta .pt or RANDOM_MODEL), the last `max_loaded` kept, and their
    resized variants.

    A download holds up only the calls that need that model, not the users of models already loaded;
    a failed load is not retried for `retry_after` seconds (offline, each try takes half a minute)."""

    def __init__(self, device: str = "cpu", max_loaded: int = 2, retry_after: float = 120.0, backend: str = "torch"):
        self.device = device
        self.backend = backend  # what runs each model variant (sam2_hf.backends), made once per variant
        self.max_loaded = max_loaded
        self.retry_after = retry_after
        self._models: OrderedDict[str, dict] = OrderedDict()  # spec -> {"native": model, image size: model}
        self._loading: dict[str, threading.Lock] = {}  # spec -> held while it loads
        self._failed: dict[str, tuple[float, str]] = {}  # spec -> (when, why)
        self._lock = threading.Lock()  # guards the dicts

    def native_size(self, spec: str) -> int:
        """The input size the weights were trained at (1024 for the official checkpoints)."""
        return self._variants(spec)["native"].config.image_size

    def predictor(self, spec: str, image_size: int, stride: int = 1) -> Sam2VideoPredictor:
        """A predictor at `image_size` whose memory reads every `stride`-th frame (tracking that steps
        over frames finds its memories there). Every clicked frame is a conditioning frame, a correction
        on a tracked frame too, so re-tracking keeps it. Predictors hold no state: making one is free."""
        model = self._model(spec, image_size)
        backend = self._backend(spec, model)
        return Sam2VideoPredictor(
            model, memory_temporal_stride_for_eval=stride, add_all_frames_to_correct_as_cond=True, backend=backend
        )

    def _backend(self, spec: str, model: Sam2VideoModel):
        """The variant's backend, made on first use (an exported runtime exports the variant once into the cache and
        compiles its graphs) and kept with the variant."""
        variants = self._variants(spec)
        key = ("backend", model.config.image_size)
        with self._lock:
            making = self._loading.setdefault(key, threading.Lock())
        with making:
            if key not in variants:
                variants[key] = make_backend(model, self.backend)
        return variants[key]

    def _variants(self, spec: str) -> dict:
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            loading = self._loading.setdefault(spec, threading.Lock())
        with loading:
            with self._lock:
                if spec in self._models:  # loaded by the call we waited for
                    return self._models[spec]
                when, why = self._failed.get(spec, (-math.inf, ""))
            if time.monotonic() - when < self.retry_after:
                raise ModelLoadError(why)
            try:
                model = load_model(spec).to(self.device).eval()
            except (OSError, ValueError, ModelLoadError) as e:
                why = str(e) if isinstance(e, ModelLoadError) else load_error_message(spec, e)
                with self._lock:
                    self._failed[spec] = (time.monotonic(), why)
                    self._loading.pop(spec, None)
                raise ModelLoadError(why) from e
            with self._lock:
                self._models[spec] = variants = {"native": model, model.config.image_size: model}
                while len(self._models) > self.max_loaded:
                    self._models.popitem(last=False)
                self._loading.pop(spec, None)
            return variants

    def _model(self, spec: str, image_size: int) -> Sam2VideoModel:
        variants = self._variants(spec)
        if image_size not in variants:
            weights = variants["native"].state_dict()
            size, version = infer_size_and_version(weights)
            model = Sam2VideoModel(Sam2VideoConfig.from_size(size, version, image_size=image_size))
            model.load_state_dict(weights, assign=True)  # shares the tensors: no copy
            variants.setdefault(image_size, model.to(self.device).eval())
        return variants[image_size]
