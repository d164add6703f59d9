"""Auto-annotation: detector boxes -> SAM 2 masks -> COCO instances / YOLO-seg labels.

The detector is a tiny random-weight DETR built from its config (nothing downloaded) and run by
transformers' object-detection pipeline, or a detection file (COCO JSON, YOLO label folder).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from sam2_hf import Sam2ImagePredictor, auto_annotate
from sam2_hf.cli import main
from sam2_hf.media.rle import decode_rle

S = 256
SIZES = {"a.png": (60, 80), "b.png": (72, 64)}  # images of different sizes


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rs = np.random.RandomState(0)
    for name, (h, w) in SIZES.items():
        image = np.full((h, w, 3), 40, np.uint8)
        image[h // 4 : h // 2, w // 4 : 3 * w // 4] = rs.randint(100, 255, 3)
        Image.fromarray(image).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def reference(reference_models):
    return reference_models("tiny", "2.1", S)


@pytest.fixture(scope="module")
def predictor(reference):
    return reference.load(Sam2ImagePredictor)


@pytest.fixture(scope="module")
def zero_shot_detector():
    """transformers' zero-shot-object-detection pipeline on a tiny random OWL-ViT with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        PreTrainedTokenizerFast,
        pipeline,
    )

    words = ["<pad>", "<unk>", "<s>", "</s>", "a", "cat", "dog"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>")
    layers = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    text = dict(vocab_size=len(words), max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    config = OwlViTConfig(text_config={**layers, **text}, vision_config={**layers, "image_size": 64, "patch_size": 16},
                          projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    model = OwlViTForObjectDetection(config).eval()
    square = {"height": 64, "width": 64}
    processor = OwlViTImageProcessor(size=square, crop_size=square)
    return pipeline("zero-shot-object-detection", model=model, tokenizer=tokenizer, image_processor=processor)


def test_zero_shot_boxes_with_labels(images, predictor, zero_shot_detector, tmp_path):
    path = auto_annotate(images, detector=zero_shot_detector, labels=["dog", "cat"], output_dir=tmp_path,
                         model=predictor, threshold=0.5, progress=False)  # fmt: skip
    coco = json.loads(path.read_text())
    assert coco["categories"] == [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    for info in coco["images"]:
        image = Image.open(images / info["file_name"]).convert("RGB")
        found = zero_shot_detector(image, candidate_labels=["dog", "cat"], threshold=0.5)
        annotations = [a for a in coco["annotations"] if a["image_id"] == info["id"]]
        assert len(annotations) == len(found) >= 1
        assert [a["category_id"] for a in annotations] == [1 if d["label"] == "dog" else 2 for d in found]
    with pytest.raises(ValueError, match="zero-shot detector needs labels"):
        auto_annotate(images, detector=zero_shot_detector, model=predictor, output_dir=tmp_path / "out")


def test_pipeline_boxes_to_coco(images, predictor, detector, tmp_path):
    path = auto_annotate(images, detector=detector, output_dir=tmp_path, model=predictor, threshold=0.0, progress=False)
    coco = COCO(str(path))  # pycocotools reads it as an instance file
    assert [coco.imgs[i]["file_name"] for i in sorted(coco.imgs)] == sorted(SIZES)
    assert {c["name"] for c in coco.dataset["categories"]} == {"cat", "dog"}
    for image_id, image_info in coco.imgs.items():
        image = np.array(Image.open(images / image_info["file_name"]))
        found = detector(Image.fromarray(image), threshold=0.0)
        boxes = [[d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in found]
        predictor.set_image(image)
        expected, _, _ = predictor.predict(box=boxes, multimask_output=False)
        expected = expected.reshape(len(boxes), *image.shape[:2]).astype(bool)
        annotations = coco.imgToAnns[image_id]
        assert len(annotations) == len(found) == 4
        for annotation, detection, mask in zip(annotations, found, expected):
            assert coco.cats[annotation["category_id"]]["name"] == detection["label"]
            assert np.array_equal(decode_rle(annotation["segmentation"]), mask)
            assert 0 < mask.mean() < 1 and annotation["area"] == mask.sum()


def write_detection_file(images, path):
    """A COCO detection file: one box per image, categories 3 ("cup") and 7 ("plate")."""
    detections = {
        "images": [{"id": i, "file_name": name} for i, name in enumerate(SIZES, start=10)],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [20, 15, 40, 15]},
            {"id": 2, "image_id": 11, "category_id": 7, "bbox": [16, 18, 32, 18], "score": 0.5},
        ],
        "categories": [{"id": 3, "name": "cup"}, {"id": 7, "name": "plate"}],
    }
    path.write_text(json.dumps(detections))
    return path


def test_detection_file_to_yolo_and_back(images, predictor, tmp_path):
    boxes = write_detection_file(images, tmp_path / "detections.json")
    labels = auto_annotate(images, detector=boxes, output_dir=tmp_path / "yolo", format="yolo", model=predictor,
                           progress=False)  # fmt: skip
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == ["cup", "plate"]
    coco = auto_annotate(images, detector=boxes, output_dir=tmp_path / "coco", model=predictor, progress=False)
    masks = {a["image_id"]: decode_rle(a["segmentation"]) for a in json.loads(coco.read_text())["annotations"]}
    for name, (h, w) in SIZES.items():
        (line,) = (labels / f"{name[:-4]}.txt").read_text().splitlines()
        cls, *xy = line.split()
        assert cls == ("0" if name == "a.png" else "1") and len(xy) >= 6
        points = np.array(xy, dtype=float).reshape(-1, 2) * [w, h]
        assert (points >= 0).all() and (points[:, 0] <= w).all() and (points[:, 1] <= h).all()
        mask = masks[list(SIZES).index(name) + 1]
        vertices = np.round(points).astype(int)  # contour vertices are mask pixels
        assert mask[vertices[:, 1], vertices[:, 0]].all() and 0 < mask.mean() < 1

    # The YOLO labels written above, read back as a detection folder: the same categories and images.
    (labels / "classes.txt").write_text("cup\nplate\n")
    for name, (h, w) in SIZES.items():
        box = json.loads(boxes.read_text())["annotations"][list(SIZES).index(name)]
        x, y, bw, bh = box["bbox"]
        (labels / f"{name[:-4]}.txt").write_text(f"{int(name == 'b.png')} {(x + bw / 2) / w} {(y + bh / 2) / h} "
                                                 f"{bw / w} {bh / h}\n")  # fmt: skip
    again = json.loads(auto_annotate(images, detector=labels, output_dir=tmp_path / "again", model=predictor,
                                     progress=False).read_text())  # fmt: skip
    first = json.loads(coco.read_text())
    assert [c["name"] for c in again["categories"]] == ["cup", "plate"]
    for a, b in zip(again["annotations"], first["annotations"]):
        assert np.array_equal(decode_rle(a["segmentation"]), decode_rle(b["segmentation"]))


def test_bad_detectors_are_named(images, predictor, detector, tmp_path):
    from transformers import ResNetConfig, ResNetModel

    classifier = tmp_path / "resnet"
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8] * 4, depths=[1] * 4)).save_pretrained(classifier)
    with pytest.raises(ValueError, match="'resnet' model, not an object-detection model"):
        auto_annotate(images, detector=classifier, model=predictor, output_dir=tmp_path / "out")
    elsewhere = write_detection_file(images, tmp_path / "other.json")
    elsewhere.write_text(elsewhere.read_text().replace(".png", ".jpg"))
    with pytest.raises(ValueError, match="No image of the detection file .*other.json"):
        auto_annotate(images, detector=elsewhere, model=predictor, output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="need a zero-shot detector"):
        auto_annotate(images, detector=detector, labels=["cat"], model=predictor, output_dir=tmp_path / "out")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match="is a file but not a COCO detection JSON \\(YOLO label files are read from"):
        auto_annotate(images, detector=tmp_path / "a.txt", model=predictor, output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="format must be one of"):
        auto_annotate(images, detector=detector, format="voc", model=predictor, output_dir=tmp_path / "out")
    (tmp_path / "labels" / "labels").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"No YOLO label files .* \(are they in .*labels/labels\?\)"):
        auto_annotate(images, detector=tmp_path / "labels", model=predictor, output_dir=tmp_path / "out")
    cases = {
        "bbox is \\[x, y, width, height\\] in pixels; got '10 10 5 5'": lambda a: a.update(bbox="10 10 5 5"),
        "bbox \\[10, 10, -5, 20\\] has a negative width or height": lambda a: a.update(bbox=[10, 10, -5, 20]),
        "image_id 42 is not among the file's images": lambda a: a.update(image_id=42),
        "a COCO detection has 'image_id', 'category_id' and 'bbox'": lambda a: a.pop("bbox"),
    }
    for message, change in cases.items():
        detections = json.loads(write_detection_file(images, tmp_path / "bad.json").read_text())
        change(detections["annotations"][1])
        (tmp_path / "bad.json").write_text(json.dumps(detections))
        with pytest.raises(ValueError, match=f"bad.json: annotation 2: {message}"):
            auto_annotate(images, detector=tmp_path / "bad.json", model=predictor, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was computed or written


def test_annotate_cli(images, reference, tmp_path, capsys):
    boxes = write_detection_file(images, tmp_path / "detections.json")
    out = tmp_path / "cli"
    args = ["annotate", str(images), "--detector", str(boxes), "--model", str(reference.path), "--image-size", "256"]
    assert main([*args, "--out", str(out), "--format", "yolo"]) == 0
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt", "b.txt"]
    assert main([*args, "--out", str(out), "--labels", "cup"]) == 2
    assert "zero-shot" in capsys.readouterr().err


def test_yolo_label_files_are_read_line_by_line(tmp_path):
    """Lines of 5 or 6 values (the score defaults to 1), blank lines skipped; anything else names the line."""
    from sam2_hf.tasks.annotate import read_yolo_labels

    good = tmp_path / "good.txt"
    good.write_text("0 0.5 0.5 0.2 0.2\n\n3 0.1 0.2 0.3 0.4 0.9\n")
    np.testing.assert_array_equal(read_yolo_labels(good), [[0, 0.5, 0.5, 0.2, 0.2, 1], [3, 0.1, 0.2, 0.3, 0.4, 0.9]])
    (tmp_path / "empty.txt").write_text("")
    assert read_yolo_labels(tmp_path / "empty.txt").shape == (0, 6)
    bad = {
        "0 0.5 0.5 0.2 0.2\n1 0.5 0.5\n": "line 2: YOLO lines are 'class cx cy w h [score]'; got 3 values.",
        "0 0.5 0.5 0.2 0.2\nperson 0.5 0.5 0.2 0.2\n": "line 2: 'person 0.5 0.5 0.2 0.2' holds a value that is not",
    }
    for i, (text, message) in enumerate(bad.items()):
        (tmp_path / f"bad{i}.txt").write_text(text)
        with pytest.raises(ValueError, match=re.escape(f"bad{i}.txt, {message}")):
            read_yolo_labels(tmp_path / f"bad{i}.txt")
    (tmp_path / "pixels.txt").write_text("0 30 20 10 10\n")
    with pytest.raises(
        ValueError, match="line 1: YOLO boxes are fractions of the image size .* \\(pixel coordinates\\?\\)"
    ):
        read_yolo_labels(tmp_path / "pixels.txt")
    Image.new("RGB", (4, 4)).save(tmp_path / "image.txt", format="PNG")
    with pytest.raises(ValueError, match="image.txt: not YOLO labels \\(binary content, not text\\)"):
        read_yolo_labels(tmp_path / "image.txt")
