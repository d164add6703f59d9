"""transformers' `Sam2Model` options on ours, compared with stock transformers on the same weights.

Our tiny SAM 2.1 image model with seeded random weights (image size 256) is saved with `save_pretrained` and
loaded by ours and by stock `transformers.Sam2Model`, both with `attn_implementation` "eager" and "sdpa"; they
get the same image and prompts (2 objects of 2 points each). Covered:

- `return_dict=False` gives the same tuple as stock (and as our own `to_tuple()`), also as the config default;
- `output_hidden_states` / `output_attentions` give stock's `vision_hidden_states`, `vision_attentions` and
  `mask_decoder_attentions` (same count, shapes and values), also from the config;
- PerSAM's `attention_similarity` / `target_embedding` change the masks exactly as in stock;
- `get_image_features` (every field, also as a tuple), `get_image_embeddings` and `get_input_embeddings`;
- "eager" and "sdpa" agree in the image encoder, the two-way transformer and the memory attention, in fp32 and
  half precision; eager never calls SDPA; `set_attn_implementation` reaches every attention layer;
- unknown keyword arguments raise a TypeError naming them (image forward, video forward without a session).

Measured (fp32, CPU): ours vs stock <= 7e-6 (vision hidden states, max |value| ~6), <= 5e-7 elsewhere; eager
vs sdpa <= 6e-6 on the vision hidden states, <= 5e-7 on masks, scores and the memory attention.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers

from sam2_hf import Sam2Config, Sam2Model, Sam2VideoModel
from sam2_hf.models.components import layers
from test_hub_format import IMAGE_SIZE, inputs, randomize

from reference import max_abs_diff

TOL = 1e-4
IMPLEMENTATIONS = ["eager", "sdpa"]
HALF_DTYPES = [torch.bfloat16, torch.float16]
HALF_EPS = 6  # eager vs sdpa in half precision, in machine epsilons of the output's scale (measured <= 2.8)
OUTPUT_FIELDS = ("iou_scores", "pred_masks", "object_score_logits")
RECORDED_FIELDS = ("vision_hidden_states", "vision_attentions", "mask_decoder_attentions")


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A `save_pretrained` folder of our tiny SAM 2.1 image model with random weights."""
    torch.manual_seed(0)
    model = randomize(Sam2Model(Sam2Config.from_size("tiny", "2.1", image_size=IMAGE_SIZE)))
    path = tmp_path_factory.mktemp("options")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def models(request, folder):
    """(ours, transformers') loaded with the same weights and `attn_implementation`."""
    ours = Sam2Model.from_pretrained(folder, attn_implementation=request.param).eval()
    theirs = transformers.Sam2Model.from_pretrained(folder, attn_implementation=request.param).eval()
    return ours, theirs


def prompts() -> dict:
    """One image, two objects of two clicks each (no padding point: see `test_hub_format.inputs`)."""
    pixels, points, labels, _ = inputs(IMAGE_SIZE)
    return {"pixel_values": pixels[:1], "input_points": points[:1], "input_labels": labels[:1]}


def tensors(x) -> list[torch.Tensor]:
    """The tensors of a (nested) tuple / list in order."""
    if isinstance(x, (tuple, list)):
        return [t for item in x for t in tensors(item)]
    return [x]


def assert_close(ours, theirs, what: str, tol: float = TOL):
    ours, theirs = tensors(ours), tensors(theirs)
    assert len(ours) == len(theirs), f"{what}: {len(ours)} tensors vs {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"{what}[{i}]: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        scale = max(1.0, b.abs().max().item())
        assert max_abs_diff(a, b) <= tol * scale, f"{what}[{i}]: {max_abs_diff(a, b):.3e} (scale {scale:.2f})"


def attention_modules(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__.endswith("Attention") and hasattr(m, "config")]


# ---------------------------------------------------------------------------------------- vs transformers
@pytest.mark.parametrize("flags", [{}, {"output_hidden_states": True, "output_attentions": True}])
def test_return_dict_false_is_stocks_tuple(models, flags):
    ours, theirs = models
    ours_tuple = ours(**prompts(), **flags, return_dict=False)
    assert isinstance(ours_tuple, tuple)
    assert_close(ours_tuple, theirs(**prompts(), **flags, return_dict=False), "tuple vs transformers")
    assert_close(ours_tuple, ours(**prompts(), **flags).to_tuple(), "tuple vs to_tuple()", tol=0)


def test_return_dict_from_config(folder):
    model = Sam2Model.from_pretrained(folder, return_dict=False).eval()
    assert isinstance(model(**prompts()), tuple)
    assert isinstance(model(**prompts(), return_dict=True), transformers.utils.ModelOutput)


def test_hidden_states_and_attentions_are_stocks(models):
    ours, theirs = models
    flags = {"output_hidden_states": True, "output_attentions": True}
    out, ref = ours(**prompts(), **flags), theirs(**prompts(), **flags)
    blocks = len(ours.vision_encoder.backbone.blocks)
    assert len(out.vision_hidden_states) == blocks + 1 and len(out.vision_attentions) == blocks
    assert len(out.mask_decoder_attentions) == ours.config.mask_decoder_config.num_hidden_layers
    for field in RECORDED_FIELDS:
        assert_close(getattr(out, field), getattr(ref, field), field)
    assert_close([getattr(out, f) for f in OUTPUT_FIELDS], [getattr(ref, f) for f in OUTPUT_FIELDS], "outputs")

    plain = ours(**prompts())
    assert all(getattr(plain, field) is None for field in RECORDED_FIELDS)
    assert_close([getattr(plain, f) for f in OUTPUT_FIELDS], [getattr(out, f) for f in OUTPUT_FIELDS], "flags", 0)


def test_output_flags_from_config(folder):
    model = Sam2Model.from_pretrained(folder, output_hidden_states=True, output_attentions=True).eval()
    out = model(**prompts())
    assert all(getattr(out, field) is not None for field in RECORDED_FIELDS)
    decoder_only = {"image_embeddings": out.image_embeddings, "input_points": prompts()["input_points"]}
    out = model(**decoder_only)  # no image encoder run: nothing of it to record
    assert out.vision_hidden_states is None and out.mask_decoder_attentions is not None
    assert model(**decoder_only, output_attentions=False).mask_decoder_attentions is None  # explicit flags win


def test_persam_options_are_stocks(models):
    ours, theirs = models
    generator = torch.Generator().manual_seed(3)
    tokens = 6 + 2 + 1  # output tokens, 2 points, the padding point
    options = {
        "attention_similarity": torch.randn(2, 1, tokens, (IMAGE_SIZE // 16) ** 2, generator=generator),
        "target_embedding": torch.randn(1, 2, 1, 256, generator=generator) * 0.5,
    }
    out, ref = ours(**prompts(), **options), theirs(**prompts(), **options)
    assert_close([getattr(out, f) for f in OUTPUT_FIELDS], [getattr(ref, f) for f in OUTPUT_FIELDS], "PerSAM")
    assert max_abs_diff(out.pred_masks, ours(**prompts()).pred_masks) > 100 * TOL  # the options do something


def test_image_features_are_stocks(models):
    ours, theirs = models
    pixels = prompts()["pixel_values"]
    out, ref = ours.get_image_features(pixels), theirs.get_image_features(pixels)
    for field in ("last_hidden_state", "fpn_hidden_states", "fpn_position_encoding"):
        assert_close(getattr(out, field), getattr(ref, field), field)
    assert_close(ours.get_image_features(pixels, return_dict=False), out.to_tuple(), "tuple", tol=0)
    flags = {"output_hidden_states": True, "output_attentions": True}
    out, ref = ours.get_image_features(pixels, **flags), theirs.get_image_features(pixels, **flags)
    assert_close(out.hidden_states, ref.hidden_states, "hidden_states")
    assert_close(out.attentions, ref.attentions, "attentions")
    assert_close(ours.get_image_embeddings(pixels), theirs.get_image_embeddings(pixels), "get_image_embeddings")
    assert ours.get_input_embeddings() is ours.vision_encoder.backbone.patch_embed
    assert torch.equal(ours.get_input_embeddings().projection.weight, theirs.get_input_embeddings().projection.weight)


# ------------------------------------------------------------------------------------------ eager vs sdpa
def test_eager_matches_sdpa(folder, monkeypatch):
    eager = Sam2Model.from_pretrained(folder, attn_implementation="eager").eval()
    sdpa = Sam2Model.from_pretrained(folder, attn_implementation="sdpa").eval()
    flags = {"output_hidden_states": True, "output_attentions": True}
    calls = []
    sdpa_function, few_keys = F.scaled_dot_product_attention, layers.attention_to_few_keys
    counted_sdpa = lambda *args, **kwargs: calls.append("sdpa") or sdpa_function(*args, **kwargs)
    monkeypatch.setattr(F, "scaled_dot_product_attention", counted_sdpa)
    monkeypatch.setattr(layers, "attention_to_few_keys", lambda *a: calls.append("few keys") or few_keys(*a))
    expected = sdpa(**prompts(), **flags)
    # every attention layer ran "sdpa" once: SDPA, or on CPU its few-keys form (the mask decoder's image-to-token)
    assert len(calls) == len(attention_modules(sdpa)) and calls.count("few keys") == 2, calls
    calls.clear()
    out = eager(**prompts(), **flags)
    assert not calls, "eager attention called SDPA"
    assert_close(out.to_tuple(), expected.to_tuple(), "eager vs sdpa")

    eager.set_attn_implementation("sdpa")
    assert_close(eager(**prompts(), **flags).to_tuple(), expected.to_tuple(), "switched to sdpa", tol=0)


@pytest.mark.parametrize("cls", [Sam2Model, Sam2VideoModel])
def test_attn_implementation_reaches_every_attention_layer(cls):
    model = cls(cls.config_class.from_size("tiny", "2.1", image_size=IMAGE_SIZE))
    layers = attention_modules(model)
    assert {name.split(".")[0] for name, _ in layers} >= {"vision_encoder", "mask_decoder"}
    for implementation in ["eager", "sdpa", "eager"]:
        model.set_attn_implementation(implementation)
        assert model.vision_encoder.config._attn_implementation == implementation
        assert model.mask_decoder.config._attn_implementation == implementation
        assert {m.config._attn_implementation for _, m in layers} == {implementation}


def test_memory_attention_eager_matches_sdpa(monkeypatch):
    torch.manual_seed(0)
    model = Sam2VideoModel(Sam2VideoModel.config_class.from_size("tiny", "2.1", image_size=IMAGE_SIZE)).eval()
    hw, memory_tokens, pointer_tokens = (IMAGE_SIZE // 16) ** 2, 2 * (IMAGE_SIZE // 16) ** 2 + 8, 8
    generator = torch.Generator().manual_seed(1)
    curr, curr_pos = (torch.randn(1, hw, 256, generator=generator) for _ in range(2))
    memory, memory_pos = (torch.randn(3, memory_tokens, 64, generator=generator) for _ in range(2))
    expected = model.memory_attention(curr, curr_pos, memory, memory_pos, pointer_tokens)
    model.set_attn_implementation("eager")
    monkeypatch.setattr(F, "scaled_dot_product_attention", None)  # eager must not need it
    out = model.memory_attention(curr, curr_pos, memory, memory_pos, pointer_tokens)
    assert_close(out, expected, "memory attention eager vs sdpa")


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_half_precision_eager_matches_sdpa(folder, dtype):
    out = {
        implementation: Sam2Model.from_pretrained(folder, dtype=dtype, attn_implementation=implementation).eval()(
            **prompts()
        )
        for implementation in IMPLEMENTATIONS
    }
    eps = torch.finfo(dtype).eps
    for field in OUTPUT_FIELDS:
        a, b = (getattr(out[i], field).float() for i in IMPLEMENTATIONS)
        scale = b.abs().max().item()
        assert max_abs_diff(a, b) <= HALF_EPS * eps * scale, f"{field}: {max_abs_diff(a, b) / eps / scale:.2f} eps"


# ------------------------------------------------------------------------------------------ unknown names
def test_unknown_keyword_is_a_type_error(folder):
    image_model = Sam2Model.from_pretrained(folder).eval()
    pixels = prompts()["pixel_values"]
    with pytest.raises(TypeError, match="not_an_option"):
        image_model(pixel_values=pixels, not_an_option=1)
    with pytest.raises(TypeError, match="position_ids"):  # a transformers keyword that means nothing here
        image_model(pixel_values=pixels, position_ids=torch.arange(3))
    with pytest.raises(TypeError, match="not_an_option"):
        image_model.get_image_features(pixels, not_an_option=1)
    video_model = Sam2VideoModel(Sam2VideoModel.config_class.from_size("tiny", "2.1", image_size=IMAGE_SIZE))
    with pytest.raises(TypeError, match="not_an_option"):
        video_model(pixel_values=pixels, not_an_option=1)


STOCK_SAM2_MODULES = [
    "transformers.models.sam2.modeling_sam2",
    "transformers.models.sam2.configuration_sam2",
    "transformers.models.sam2.processing_sam2",
    "transformers.models.sam2.image_processing_sam2",
    "transformers.models.sam2_video.modeling_sam2_video",
    "transformers.models.sam2_video.configuration_sam2_video",
    "transformers.models.sam2_video.processing_sam2_video",
    "transformers.models.sam2_video.video_processing_sam2_video",
]


def test_every_name_transformers_exports_for_sam2_is_here():
    """Switching `from transformers import X` to `from sam2_hf import X` works for every SAM 2 name, and
    each is a class of the same kind (config, model, processor) as stock's."""
    import importlib

    import sam2_hf

    for module_name in STOCK_SAM2_MODULES:
        for name in importlib.import_module(module_name).__all__:
            ours, stock = getattr(sam2_hf, name, None), getattr(importlib.import_module(module_name), name)
            assert ours is not None and ours.__module__.startswith("sam2_hf"), name
            kinds = (transformers.PreTrainedConfig, transformers.PreTrainedModel, transformers.ProcessorMixin)
            for kind in kinds:
                assert issubclass(ours, kind) == issubclass(stock, kind), (name, kind)


def test_vision_models_are_stocks(tmp_path):
    """`Sam2VisionModel` / `Sam2HieraDetModel` (the image encoder and trunk inside `Sam2Model`) save in
    stock's format and give stock's outputs on the same weights."""
    from sam2_hf import Sam2HieraDetModel, Sam2VisionConfig, Sam2VisionModel

    torch.manual_seed(0)
    config = Sam2VideoModel.config_class.from_size("tiny", "2.1", image_size=IMAGE_SIZE).vision_config
    ours = Sam2VisionModel(Sam2VisionConfig(**config.to_dict())).eval()
    ours.save_pretrained(tmp_path / "vision")
    stock = transformers.Sam2VisionModel.from_pretrained(tmp_path / "vision").eval()
    pixels = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        got, want = ours(pixels, output_hidden_states=True), stock(pixels, output_hidden_states=True)
        for a, b in zip([got.last_hidden_state, *got.fpn_hidden_states, *got.hidden_states],
                        [want.last_hidden_state, *want.fpn_hidden_states, *want.hidden_states]):  # fmt: skip
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
        trunk = ours.backbone
        assert isinstance(trunk, Sam2HieraDetModel)
        stock_trunk = stock.backbone(pixels)
        assert torch.allclose(trunk(pixels).last_hidden_state, stock_trunk.last_hidden_state, atol=1e-5)
    assert isinstance(Sam2VideoModel(Sam2VideoModel.config_class.from_size("tiny", image_size=64)).vision_encoder,
                      Sam2VisionModel)  # fmt: skip


@pytest.mark.parametrize("selection", [[0, 2], 3, [12, 0, 99], []])
def test_hidden_states_selected_by_index_are_stocks(models, selection):
    """`output_hidden_states` given as indices keeps only those states, None in the others' places, as stock's
    `capture_outputs` does (out-of-range indices select nothing, an empty list none), in `forward` and in
    `get_image_features`."""
    ours, theirs = models
    out = ours(**prompts(), output_hidden_states=selection).vision_hidden_states
    ref = theirs(**prompts(), output_hidden_states=selection).vision_hidden_states
    if selection == []:
        assert out is None and ref is None
        return
    assert [h is None for h in out] == [h is None for h in ref] and len(out) == len(
        ours.vision_encoder.backbone.blocks
    ) + 1
    kept = [i for i, h in enumerate(out) if h is not None]
    assert kept == sorted({i for i in ([selection] if isinstance(selection, int) else selection) if i < len(out)})
    assert_close([out[i] for i in kept], [ref[i] for i in kept], "selected hidden states")
    pixels = prompts()["pixel_values"]
    features = ours.get_image_features(pixels, output_hidden_states=selection).hidden_states
    stock_features = theirs.get_image_features(pixels, output_hidden_states=selection).hidden_states
    assert [h is None for h in features] == [h is None for h in stock_features]


def test_negative_hidden_state_indices_count_from_the_end(models):
    """Negative indices select from the end, as transformers' `resolve_hidden_states_indices` reads them (stock
    Sam2 refuses them: its Hiera config has no `num_hidden_layers` to count from): -1 is stock's index 12."""
    ours, theirs = models
    out = ours(**prompts(), output_hidden_states=[-1]).vision_hidden_states
    ref = theirs(**prompts(), output_hidden_states=[len(out) - 1]).vision_hidden_states
    assert [h is None for h in out] == [h is None for h in ref] == [True] * (len(out) - 1) + [False]
    assert_close(out[-1], ref[-1], "last hidden state")


def test_from_pretrained_without_name_builds_from_the_given_weights_as_transformers(folder):
    """`from_pretrained(None, config=c, state_dict=...)` (transformers' `test_can_init_all_missing_weights`)
    raised a TypeError from `os.fspath(None)`. As in transformers: with every `_init_weights` call seeded, an
    empty state_dict gives exactly the model built from the config (nothing left on the meta device), and the
    weights not given are reported missing, the same keys as stock's `Sam2Model` reports."""
    import copy

    from transformers import PreTrainedModel, set_seed

    config = Sam2Config.from_pretrained(folder)
    initialize_weights = PreTrainedModel._initialize_weights

    def seeded_initialize_weights(self, module, *args):
        set_seed(0)
        initialize_weights(self, module, *args)

    PreTrainedModel._initialize_weights = seeded_initialize_weights
    try:
        from_config = Sam2Model(copy.deepcopy(config))
        from_nothing, info = Sam2Model.from_pretrained(None, config=config, state_dict={}, output_loading_info=True)
    finally:
        PreTrainedModel._initialize_weights = initialize_weights
    assert not [name for name, p in from_nothing.named_parameters() if p.device.type == "meta"]
    assert list(from_config.state_dict()) == list(from_nothing.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(from_config.state_dict().values(), from_nothing.state_dict().values()))
    assert info["missing_keys"] == set(from_config.state_dict())

    weights = Sam2Model.from_pretrained(folder).state_dict()
    given = {k: v for k, v in weights.items() if not k.startswith("mask_decoder.")}
    partial, info = Sam2Model.from_pretrained(None, config=config, state_dict=given, output_loading_info=True)
    stock_info = transformers.Sam2Model.from_pretrained(
        None, config=transformers.Sam2Config.from_pretrained(folder), state_dict=given, output_loading_info=True
    )[1]
    assert info["missing_keys"] == stock_info["missing_keys"] == set(weights) - set(given) != set()
    assert all(torch.equal(partial.state_dict()[k], v) for k, v in given.items())
    with pytest.raises(ValueError, match=r"weights in the given state_dict do not fit Sam2Model.*missing"):
        Sam2Model.from_pretrained(None, config=config, state_dict=given, strict=True)
