"""Encoders: the registry, shapes and determinism, backends agreeing, and real-photo/real-text quality checks.

Models are built once per module (loading them is most of the cost); ONNX exports
go to a temporary cache so the user's ``~/.cache/tuwen`` is never touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from tuwen.encoders import Encoder, available, get_encoder
from tuwen.encoders.images import ImageDecodeError, iter_batches, load_image

IMAGE_ENCODERS = {"mobilenet_v2": 1280, "efficientnet_lite0": 1280, "color_histogram": 128}
TEXT_ENCODERS = {"use_multilingual": 512, "minilm": 384}
ARTICLE_TYPES = ["Watches", "Casual Shoes", "Handbags", "Tshirts"]


pytestmark = pytest.mark.usefixtures("onnx_cache")  # tests/encoders/conftest.py


@pytest.fixture(scope="module")
def encoders() -> dict[str, Encoder]:
    """One instance per built-in encoder, shared by the tests (lazy models load once)."""
    return {name: get_encoder(name) for name in [*IMAGE_ENCODERS, *TEXT_ENCODERS]}


@pytest.fixture
def product_images(tmp_path: Path) -> list[Path]:
    """Three synthetic product photos: red and blue shapes on a white background, different sizes."""
    specs = [
        ("red", (60, 40, 170, 200), (225, 300)),
        ("blue", (30, 30, 190, 190), (224, 224)),
        ("red", (120, 150, 220, 250), (400, 400)),
    ]
    paths = []
    for i, (colour, box, size) in enumerate(specs):
        image = Image.new("RGB", size, "white")
        ImageDraw.Draw(image).rectangle(box, fill=colour)
        path = tmp_path / f"product-{i}.jpg"
        image.save(path, quality=95)
        paths.append(path)
    return paths


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def leave_one_out_1nn(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Share of items whose nearest other item (cosine) has the same label."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return float((labels[similarity.argmax(axis=1)] == labels).mean())


# -- registry ---------------------------------------------------------------------------------


def test_registry_lists_the_builtin_encoders() -> None:
    assert set(IMAGE_ENCODERS) | set(TEXT_ENCODERS) | {"tfidf"} <= set(available())


def test_unknown_encoder_name_raises_key_error_listing_the_names() -> None:
    with pytest.raises(KeyError) as error:
        get_encoder("no-such-encoder")
    assert "no-such-encoder" in str(error.value)
    assert "mobilenet_v2" in str(error.value) and "use_multilingual" in str(error.value)


# -- image loading ------------------------------------------------------------------------------


def test_load_image_squashes_the_whole_picture_into_a_square(product_images: list[Path]) -> None:
    pixels = load_image(product_images[0], 224)  # 225x300 photo, red box in its upper-middle
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0].min() > 240  # corner stays white background: nothing was cropped into the product
    red = pixels[:, :, 0] > 200
    red &= pixels[:, :, 1] < 60
    assert 0.2 < red.mean() < 0.5


def test_iter_batches_keeps_order_and_sizes(product_images: list[Path]) -> None:
    paths = product_images + product_images[:2]
    batches = list(iter_batches(paths, 32, batch_size=2, threads=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    stacked = np.concatenate(batches)
    for row, path in zip(stacked, paths, strict=True):
        np.testing.assert_array_equal(row, load_image(path, 32))
    assert list(iter_batches([], 32)) == []


def test_unreadable_images_raise_image_decode_error_naming_the_file(tmp_path: Path, encoders: dict) -> None:
    buffer = tmp_path / "whole.jpg"
    Image.effect_noise((300, 300), 64).convert("RGB").save(buffer, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.read_bytes()[: buffer.stat().st_size // 2])
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is a text file, not a photo")
    for bad in (truncated, not_an_image, tmp_path / "missing.jpg"):
        with pytest.raises(ImageDecodeError) as error:
            encoders["mobilenet_v2"].encode([buffer, bad])
        assert error.value.path == str(bad) and str(bad) in str(error.value)
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(truncated, 224)


# -- image encoders ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(IMAGE_ENCODERS))
def test_image_encoder_shapes_dtype_and_determinism(name: str, encoders: dict, product_images: list[Path]) -> None:
    encoder = encoders[name]
    assert isinstance(encoder, Encoder)
    assert encoder.modality == "image" and encoder.dim == IMAGE_ENCODERS[name] and encoder.version
    first = encoder.encode(product_images)
    assert first.shape == (3, encoder.dim) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, encoder.encode(product_images))
    np.testing.assert_array_equal(first[1:2], encoder.encode(product_images[1:2]))  # batch-independent
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_mobilenet_weights_load_strictly_into_our_network() -> None:
    import torch

    from tuwen.encoders.image_mobilenet import MobileNetV2, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    network = MobileNetV2()
    assert network.load_state_dict(state, strict=True)  # raises on any missing or unexpected name
    assert sum(p.numel() for p in network.parameters()) == 3_504_872  # torchvision's mobilenet_v2 count


def test_mobilenet_onnx_matches_torch_and_is_cached(onnx_cache: Path) -> None:
    from tuwen.encoders.image_mobilenet import MobileNetV2Encoder

    pixels = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    onnx, torch_ = MobileNetV2Encoder(backend="onnx"), MobileNetV2Encoder(backend="torch")
    fast, reference = onnx.encode_pixels(pixels), torch_.encode_pixels(pixels)
    assert onnx.backend == "onnx" and torch_.backend == "torch"
    np.testing.assert_allclose(fast, reference, atol=1e-4, rtol=0)
    assert onnx.onnx_path().parent == onnx_cache and onnx.onnx_path().is_file()


def test_color_histogram_ignores_white_background_and_separates_colours(
    encoders: dict, product_images: list[Path]
) -> None:
    red_tall, blue, red_small = encoders["color_histogram"].encode(product_images)
    # Same colour, very different size and shape -> nearly the same histogram; another colour -> far.
    assert cosine(red_tall, red_small) > 0.9  # not 1: JPEG fringes weigh more around the small box
    assert cosine(red_tall, blue) < 0.3


@pytest.mark.realdata
def test_mobilenet_neighbours_share_the_article_type(fashion_dir: Path, encoders: dict) -> None:
    products = pd.read_csv(fashion_dir / "products.csv")
    sample = pd.concat([products[products.articleType == kind].sample(10, random_state=7) for kind in ARTICLE_TYPES])
    paths = [fashion_dir / image for image in sample.image]
    labels = sample.articleType.to_numpy()
    cnn = leave_one_out_1nn(encoders["mobilenet_v2"].encode(paths), labels)
    colour = leave_one_out_1nn(encoders["color_histogram"].encode(paths), labels)
    assert cnn >= 0.8, cnn  # measured 0.97-1.0 on several samples; chance is 0.23
    assert cnn >= colour + 0.2, (cnn, colour)


# -- text encoders ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TEXT_ENCODERS))
def test_text_encoder_shapes_blanks_and_determinism(name: str, encoders: dict) -> None:
    encoder = encoders[name]
    assert isinstance(encoder, Encoder)
    assert encoder.modality == "text" and encoder.dim == TEXT_ENCODERS[name] and encoder.version
    texts = ["Red cotton summer dress", "", None, "Black leather shoes", "Red cotton summer dress"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1, 0, 0, 1, 1], atol=1e-5)  # blank -> zeros
    np.testing.assert_array_equal(vectors[0], vectors[4])
    np.testing.assert_allclose(encoder.encode(texts[3:4])[0], vectors[3], atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_use_puts_a_chinese_title_near_its_english_translation(encoders: dict) -> None:
    dress_zh, dress_en, shoes_en = encoders["use_multilingual"].encode(
        ["红色连衣裙", "red dress", "black leather shoes"]
    )
    assert cosine(dress_zh, dress_en) > cosine(dress_zh, shoes_en) + 0.2


def test_minilm_puts_paraphrases_together(encoders: dict) -> None:
    dress, gown, shoes = encoders["minilm"].encode(["red dress", "crimson evening gown", "black leather shoes"])
    assert cosine(dress, gown) > cosine(dress, shoes)


@pytest.mark.realdata
def test_tfidf_fit_save_load_roundtrip(fashion_dir: Path, tmp_path: Path) -> None:
    from tuwen.encoders.text_tfidf import NotFittedError, TfidfEncoder

    titles = pd.read_csv(fashion_dir / "products.csv").productDisplayName.head(300).tolist()
    corpus = titles + ["红色连衣裙", "红色长裙 夏季", "黑色皮鞋", "黑色运动鞋"]
    encoder = get_encoder("tfidf", dim=64)
    with pytest.raises(NotFittedError, match="fit"):
        encoder.encode(["red dress"])
    encoder.fit(corpus)
    assert encoder.dim == 64 and encoder.version.startswith("tfidf-")
    queries = ["Titan Women Silver Watch", "红色连衣裙 新款", "", "zzzz qqqq"]
    vectors = encoder.encode(queries)
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1, abs=1e-5) and not vectors[2].any()

    encoder.save(tmp_path / "tfidf")
    reloaded = TfidfEncoder()
    reloaded.load(tmp_path / "tfidf")
    np.testing.assert_array_equal(reloaded.encode(queries), vectors)
    assert (reloaded.dim, reloaded.version) == (encoder.dim, encoder.version)

    watch, other_watch, shirt = encoder.encode(
        ["Titan Women Silver Watch", "Titan Men Black Watch", "Turtle Navy Shirt"]
    )
    assert cosine(watch, other_watch) > cosine(watch, shirt)
    red_zh, red_long_zh, shoes_zh = encoder.encode(["红色连衣裙", "红色长裙 夏季", "黑色皮鞋"])
    assert cosine(red_zh, red_long_zh) > cosine(red_zh, shoes_zh)


def test_tfidf_dim_is_capped_by_a_tiny_corpus() -> None:
    encoder = get_encoder("tfidf")
    encoder.fit(["red dress", "blue shirt", "red shoes"])
    assert encoder.dim <= 3 and encoder.encode(["red"]).shape == (1, encoder.dim)
    with pytest.raises(ValueError, match="empty"):
        get_encoder("tfidf").fit(["", "  "])


# -- OCR --------------------------------------------------------------------------------------


def test_ocr_reads_printed_text(tmp_path: Path) -> None:
    from tuwen.encoders.ocr import OcrReader

    sign = Image.new("RGB", (420, 160), "white")
    ImageDraw.Draw(sign).text((30, 40), "SALE 50", fill="black", font=ImageFont.load_default(size=64))
    sign.save(tmp_path / "sign.png")
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    text, blank = OcrReader().read([tmp_path / "sign.png", tmp_path / "blank.png"])
    assert "50" in text and "SALE" in text.upper()
    assert blank == ""


# -- local CLIP checkpoints -------------------------------------------------------------------


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte -> printable character table (GPT-2 style), for writing a tiny BPE vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def write_tiny_clip(folder: Path, projection_dim: int = 16) -> Path:
    """A randomly initialised, tiny Hugging Face CLIP checkpoint with tokenizer and image processor files."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    merges = ["r e", "re d</w>", "s h", "sh o"]
    tokens = [*chars, *(c + "</w>" for c in chars), *(m.replace(" ", "") for m in merges)]
    vocab = {token: i for i, token in enumerate([*tokens, "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "CLIPTokenizer", "model_max_length": 16, "pad_token": "<|endoftext|>", **special}
        )
    )
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "do_resize": True,
                "size": {"shortest_edge": 32},
                "do_center_crop": True,
                "crop_size": {"height": 32, "width": 32},
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "do_convert_rgb": True,
                "resample": 3,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            }
        )
    )
    eos = vocab["<|endoftext|>"]
    tiny = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={
            **tiny,
            "vocab_size": len(vocab),
            "max_position_embeddings": 16,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        projection_dim=projection_dim,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    return folder


def test_tiny_local_clip_checkpoint_loads_as_both_towers(tmp_path: Path, product_images: list[Path]) -> None:
    from tuwen.encoders.local_clip import load_local_clip

    folder = write_tiny_clip(tmp_path / "tiny-clip", projection_dim=16)
    image_tower = load_local_clip(folder, tower="image")
    text_tower = get_encoder(f"{folder}:text")
    assert (image_tower.name, text_tower.name) == ("clip:tiny-clip:image", "clip:tiny-clip:text")
    assert image_tower.dim == text_tower.dim == 16 and image_tower.version == text_tower.version

    images = image_tower.encode(product_images)
    texts = text_tower.encode(["red dress", "", "shoes"])
    assert images.shape == (3, 16) and texts.shape == (3, 16)
    assert images.dtype == texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), [1, 0, 1], atol=1e-5)
    np.testing.assert_array_equal(images, image_tower.encode(product_images))
    assert image_tower.encode([]).shape == (0, 16)


def test_open_clip_folder_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    from tuwen.encoders.local_clip import ClipCheckpointError, load_local_clip

    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 512}}))
    (tmp_path / "open_clip_pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ClipCheckpointError, match="open_clip.*torchvision"):
        load_local_clip(tmp_path, tower="image")
