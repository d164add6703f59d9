"""Fine-tuning loop: `sam2-hf finetune` writes a variant that loads everywhere (stock transformers, the
predictors, the Space), pushes it through huggingface_hub, follows Meta's optimizer recipe, and LoRA merges
into plain weights. The training step itself is checked against Meta in test_training_parity.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from sam2_hf import Sam2VideoModel, Sam2VideoPredictor
from sam2_hf.cli import main
from sam2_hf.models.checkpoint import convert_meta_key
from sam2_hf.training import FinetuneRecipe, PromptSimulation, Sam2Trainer, Sam2VideoModelForTraining
from sam2_hf.training.data import build_dataset, collate_clips, make_synthetic_dataset
from sam2_hf.training.lora import add_lora, merge_lora
from sam2_hf.training.trainer import layer_scale, parameter_groups

IMAGE_SIZE = 256
VARIANT_FILES = {"config.json", "model.safetensors", "processor_config.json", "README.md"}
TRAIN_OPTIONS = ["--max-steps", "1", "--use_cpu", "--save_strategy", "no", "--report_to", "none", "--seed", "0"]


@pytest.fixture(scope="module")
def base_model(reference_models):
    return str(reference_models("tiny", "2.1", IMAGE_SIZE).path)


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("images"), kind="images", num_items=2)


def finetune_cli(base_model, data, out, *extra) -> int:
    args = ["finetune", "--model", base_model, "--data", str(data), "--output-dir", str(out)]
    return main([*args, "--image-size", str(IMAGE_SIZE), "--recipe", "fast", *TRAIN_OPTIONS, *extra])


def test_finetuned_variant_loads_in_stock_transformers_predictors_and_space(base_model, image_data, tmp_path):
    out = tmp_path / "variant"
    assert finetune_cli(base_model, image_data, out, "--eval-data", str(image_data)) == 0
    assert {p.name for p in out.iterdir()} >= VARIANT_FILES
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Sam2VideoModel"]

    import transformers

    _, info = transformers.Sam2VideoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    transformers.Sam2VideoProcessor.from_pretrained(out)
    predictor = Sam2VideoPredictor.from_pretrained(out)
    assert predictor.image_size == IMAGE_SIZE

    from space.models import load_model

    ours = load_model(str(out))
    trained = load_file(out / "model.safetensors")
    base = Sam2VideoModel.from_pretrained(base_model, image_size=IMAGE_SIZE).state_dict()
    changed = [k for k, v in trained.items() if not torch.equal(v, base[k])]
    assert changed, "one training step changed no weight"
    assert torch.equal(ours.state_dict()[changed[0]], trained[changed[0]])

    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "mIoU@1" in card and "sam2-hf finetune" in card


@pytest.fixture
def offline_hub(tmp_path):
    """The Hub, intercepted at huggingface_hub's HTTP client: repo creation, README validation, preupload
    (every file a regular upload) and the commit are answered as the Hub answers them, the committed files
    written to a local folder; any other request fails. -> (that folder, the requests made)."""
    import base64

    import httpx2
    from huggingface_hub.utils import _http

    hub, requests = tmp_path / "hub", []

    def answer(request):
        path = request.url.path
        requests.append(f"{request.method} {path.split('/preupload/')[0].split('/commit/')[0]}")
        if path == "/api/repos/create":
            body = json.loads(request.content)
            repo_id = f"{body['organization']}/{body['name']}"
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                for f in json.loads(request.content)["files"]
            ]
            return httpx2.Response(200, json={"files": files, "commitOid": "0" * 40})
        if "/commit/" in path:
            repo_id = path.removeprefix("/api/models/").split("/commit/")[0]
            for line in request.read().decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    target = hub / repo_id / item["value"]["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(item["value"]["content"]))
            url = f"https://huggingface.co/{repo_id}/commit/{'0' * 40}"
            return httpx2.Response(200, json={"commitUrl": url, "commitOid": "0" * 40})
        return httpx2.Response(500, json={"error": f"unexpected request {request.method} {request.url}"})

    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(answer)))
    _http.close_session()
    yield hub, requests
    _http.set_client_factory(_http.default_client_factory)
    _http.close_session()


def test_push_to_hub_uploads_the_variant(base_model, image_data, tmp_path, offline_hub):
    hub, requests = offline_hub
    assert finetune_cli(base_model, image_data, tmp_path / "out", "--push-to-hub", "me/sam2-test") == 0
    assert {"POST /api/repos/create", "POST /api/validate-yaml", "POST /api/models/me/sam2-test"} <= set(requests)
    pushed = hub / "me/sam2-test"
    assert {p.name for p in pushed.iterdir()} >= VARIANT_FILES
    assert "me/sam2-test" in (pushed / "README.md").read_text()
    Sam2VideoModel.from_pretrained(pushed)


def test_check_data_lists_every_problem(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "bad", kind="images", num_items=4)
    masks = sorted((data / "masks").glob("*.png"))
    masks[0].write_bytes(b"not a png")
    masks[1].unlink()
    Image.fromarray(np.zeros_like(np.array(Image.open(masks[2])))).save(masks[2])  # no object at all
    assert main(["finetune", "--data", str(data), "--check-data"]) == 1
    out = capsys.readouterr().out
    assert masks[0].name in out and masks[1].stem in out and f"{masks[2].name}: no object annotated" in out


def test_check_data_uses_the_clip_length(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "clips", kind="davis", num_items=2, num_frames=4)
    assert main(["finetune", "--data", str(data), "--check-data"]) == 1  # Meta's 8-frame clips do not fit
    assert "fewer than num_frames=8" in capsys.readouterr().out
    assert main(["finetune", "--data", str(data), "--eval-data", str(data), "--num-frames", "4", "--check-data"]) == 0


def test_bad_data_is_a_clear_error_before_training(base_model, tmp_path, capsys):
    assert finetune_cli(base_model, tmp_path / "missing", tmp_path / "out") == 2
    assert "missing" in capsys.readouterr().err


def test_parameter_groups_follow_meta_layer_decay_and_weight_decay(reference_models):
    """Meta's recipe: per-layer rates from `Hiera.get_layer_id` and `layer_decay_param_modifier`
    (pos_embed overridden to 1), image encoder at vision_lr, no weight decay on biases and nn.LayerNorm."""
    meta = reference_models("tiny", "2.1", IMAGE_SIZE).meta
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining)
    trunk = meta.image_encoder.trunk
    num_layers = trunk.get_num_layers() + 1
    base_lr, vision_lr, decay = 5e-6, 3e-6, 0.9
    meta_lr, meta_wd = {}, {}
    layer_norms = {id(m.weight) for m in meta.modules() if isinstance(m, torch.nn.LayerNorm)}
    for name, param in meta.named_parameters():
        scale = 1.0
        if name.startswith("image_encoder.trunk"):
            scale = 1.0 if "pos_embed" in name else decay ** (num_layers - trunk.get_layer_id(name))
        lr = (vision_lr if name.startswith("image_encoder.") else base_lr) * scale
        key = convert_meta_key(name)
        meta_lr[key] = lr
        meta_wd[key] = 0.0 if ("bias" in name or id(param) in layer_norms) else 0.1
    ours_lr, ours_wd = {}, {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in parameter_groups(model, base_lr, vision_lr / base_lr, decay, 0.1):
        for p in group["params"]:
            ours_lr[names[id(p)]], ours_wd[names[id(p)]] = group["lr"], group["weight_decay"]
    shared = set(meta_lr) & set(ours_lr)
    assert len(shared) > 0.95 * len(ours_lr)  # Meta's four point embeddings are one table here
    assert len({round(v, 12) for v in ours_lr.values()}) > 10  # layer decay made many rates
    for key in shared:
        assert ours_lr[key] == pytest.approx(meta_lr[key], rel=1e-9), key
        assert ours_wd[key] == meta_wd[key], key
    assert layer_scale("memory_attention.layers.0.linear1.weight", 12, decay) == 1.0


def test_lora_trains_adapters_only_and_merges_into_plain_weights(reference_models, image_data):
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining)
    keys = set(model.state_dict())
    trainable = add_lora(model, ("mask_decoder",), r=4)
    assert 0 < trainable < 0.05 * sum(p.numel() for p in model.parameters())
    batch = collate_clips([build_dataset(image_data, IMAGE_SIZE, 1, 2, augment=False, seed=0)[0]])
    model.train()
    loss = FinetuneRecipe().loss()(model(**batch), batch["masks"])["core_loss"]
    loss.backward()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    optimizer.step()
    model.eval()
    model.set_prompt_simulation(model.prompt_simulation)  # the same prompts for both passes
    torch.manual_seed(0)
    with torch.no_grad():
        before_merge = model(**batch)[0]["pred_masks"]
    assert merge_lora(model) > 0
    assert set(model.state_dict()) == keys
    model.set_prompt_simulation(model.prompt_simulation)
    torch.manual_seed(0)
    with torch.no_grad():
        after_merge = model(**batch)[0]["pred_masks"]
    assert (after_merge - before_merge).abs().max() < 1e-3


def test_unknown_lora_part_is_refused(reference_models):
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining)
    with pytest.raises(ValueError, match="Unknown LoRA parts"):
        add_lora(model, ("decoder",))


def test_recipes_by_name():
    assert FinetuneRecipe.named("meta") == FinetuneRecipe.meta() == FinetuneRecipe()
    fast = FinetuneRecipe.named("fast", num_frames=4)
    assert (fast.learning_rate, fast.layer_decay, fast.num_frames) == (1e-4, 1.0, 4)
    with pytest.raises(ValueError, match="Unknown recipe"):
        FinetuneRecipe.named("slow")


def test_recipe_refuses_more_conditioning_frames_than_the_clip_holds():
    prompts = PromptSimulation(num_init_cond_frames_for_train=3)
    with pytest.raises(
        ValueError, match=r"num_init_cond_frames_for_train \(3\) is more than the clip's num_frames \(2\)"
    ):
        FinetuneRecipe(num_frames=2, prompt_simulation=prompts)
    assert FinetuneRecipe(num_frames=1, prompt_simulation=prompts).num_frames == 1  # images: one frame, clicks
    assert FinetuneRecipe.named("meta", num_frames=2).num_frames == 2
    for name in ("num_frames", "max_num_objects"):
        with pytest.raises(ValueError, match=f"{name} must be at least 1, not 0"):
            FinetuneRecipe(**{name: 0})


def test_report_to_a_tool_that_is_not_installed_is_refused(base_model, image_data, tmp_path, capsys):
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    absent = sorted(set(INTEGRATION_TO_CALLBACK) - set(get_available_reporting_integrations()))[0]
    args = ["finetune", "--model", base_model, "--data", str(image_data), "--output-dir", str(tmp_path / "out")]
    assert main([*args, "--report_to", absent]) == 2
    assert f"--report_to {absent}: the package is not installed here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_option_mistakes_get_one_line_each(base_model, image_data, tmp_path, capsys):
    """A misspelt option names its closest match; a bad TrainingArguments value or LoRA rank is one line."""
    args = ["finetune", "--model", base_model, "--data", str(image_data), "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--learnin_rate", "1e-5", "--num-frame", "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--learnin_rate: did you mean --learning_rate?" in err and "--num-frame: did you mean --num-frames?" in err
    assert main([*args, "--learning-rate", "1e-5x"]) == 2
    err = capsys.readouterr().err
    assert err == "sam2-hf: argument --learning_rate/--learning-rate: invalid float value: '1e-5x'\n", err
    assert main([*args, "--lora", "--lora-rank", "0"]) == 2
    assert "--lora-rank must be at least 1, not 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_recipe_and_training_arguments():
    args = FinetuneRecipe.meta().training_arguments("unused", max_steps=5)
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (5e-6, 0.1, 0.1)
    assert args.lr_scheduler_kwargs == {"min_lr_rate": 0.1} and args.max_steps == 5
    assert Path(args.output_dir).name == "unused"


def test_two_process_ddp_run(base_model, image_data, tmp_path):
    """`torchrun` with two CPU processes (gloo): DDP wraps the model, the loss averages the object count over
    processes, parameters a step leaves without gradient are allowed, and rank 0 writes the variant."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "sam2_hf.cli"]
    command += ["finetune", "--model", base_model, "--data", str(image_data), "--output-dir", str(out)]
    command += ["--image-size", str(IMAGE_SIZE), "--recipe", "fast", *TRAIN_OPTIONS, "--ddp_backend", "gloo"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Two images, one per process per step: the single step covers the whole epoch (one process: half of it).
    assert "'train_loss'" in result.stdout and "'epoch': '1'" in result.stdout, result.stdout[-2000:]
    assert {p.name for p in out.iterdir()} >= VARIANT_FILES


def test_bf16_autocast_step_on_clips(base_model, tmp_path):
    """Mixed precision as on a GPU (`--bf16`: transformers' autocast, here on CPU) through a 4-frame clip with
    memory; the saved weights stay fp32 and finite."""
    data = make_synthetic_dataset(tmp_path / "clips", kind="davis", num_items=2, num_frames=4)
    out = tmp_path / "bf16"
    assert finetune_cli(base_model, data, out, "--num-frames", "4", "--bf16") == 0
    weights = load_file(out / "model.safetensors")
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


def test_a_batch_with_nothing_to_learn_gives_zero_gradients(reference_models, tmp_path):
    """A 2-frame clip whose two frames both get their ground truth as mask input (two initial conditioning
    frames, no clicks) has outputs that depend on no weight: the step gives zero gradients, not an error."""
    from transformers import TrainingArguments

    data = make_synthetic_dataset(tmp_path / "clips", kind="davis", num_items=1, num_frames=2)
    prompts = PromptSimulation(num_init_cond_frames_for_train=2, rand_init_cond_frames_for_train=False)
    recipe = dataclasses.replace(FinetuneRecipe.fast(), num_frames=2, prompt_simulation=prompts)
    model = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModelForTraining)
    args = TrainingArguments(str(tmp_path / "out"), use_cpu=True, report_to="none", max_steps=1)
    trainer = Sam2Trainer(model, args, recipe=recipe)
    batch = collate_clips([build_dataset(data, IMAGE_SIZE, 2, 3, augment=False, seed=0)[0]])
    assert batch["pixel_values"].shape[0] == 2 and batch["masks"].any()
    model.train()
    loss = trainer.compute_loss(model, batch)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and not g.any() for g in grads)
