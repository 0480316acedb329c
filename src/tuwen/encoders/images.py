"""Shared image loading for the image encoders: decode, squash to a square, batch, overlap.

Every image encoder sees the same pixels: the whole product squashed into a
``size x size`` square (no crop, so a long dress or a wide handbag is never cut),
as ``uint8`` RGB. Decoding runs in a thread pool one batch ahead of the model,
because PIL releases the GIL while decoding and the model leaves CPU idle
between its own parallel sections; on two cores that overlap is worth ~1.5x.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import sys
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from tuwen.encoders.base import Modality
from tuwen.util.runtime import cpu_count, torch_threads

if TYPE_CHECKING:  # torch is imported only when a CNN actually runs: color histograms never pay for it
    import torch

# Part of every image encoder's ``version``: change it when the pixels change.
PIXELS_VERSION = "squash-bilinear-draft-1"


class ImageDecodeError(ValueError):
    """An image file could not be read; names the file so a bad row can be reported and skipped."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode image {self.path}: {reason}")


def open_rgb(path: str | os.PathLike[str], draft_size: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, raising :class:`ImageDecodeError` on any failure.

    ``draft_size`` lets the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding
    (never below ``draft_size``), which is what makes large photos cheap (72 -> 512 img/s).
    """
    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()  # decode now, inside the try: truncated files fail here, not later
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(path, f"{type(error).__name__}: {error}") from None


def open_downscaled(source: str | os.PathLike[str] | BinaryIO, side: int, max_pixels: int) -> Image.Image:
    """Decode an image as RGB with its short side no smaller than ``side`` but no larger than it has to be.

    For photos that arrive from outside (uploads): the pixel count is checked from the header before anything
    decodes, JPEGs decode straight at 1/2..1/8 scale (``draft``) and other formats are shrunk by a whole factor
    (``reduce``, a fast box filter) right after decoding, so the encoders' own resize starts from a few hundred
    pixels instead of tens of millions. Raises :class:`ImageDecodeError` with the reason.
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, os.PathLike)) else "upload")
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(name, f"image too large ({width}x{height} = {width * height:,} pixels; "
                                             f"the limit is {max_pixels:,})")
            if image.format == "JPEG":
                image.draft("RGB", (side, side))
            image.load()
            work = image if image.mode in ("RGB", "L") else image.convert("RGB")  # reduce() skips palette modes
            factor = min(work.size) // side
            reduced = work.reduce(factor) if factor >= 2 else work
            return reduced.convert("RGB") if reduced.mode != "RGB" else reduced.copy()
    except UnidentifiedImageError:
        raise ImageDecodeError(name, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, ImageDecodeError):
            raise
        raise ImageDecodeError(name, f"{type(error).__name__}: {error}") from None


def load_image(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one image into a ``(size, size, 3)`` uint8 array, the whole product squashed into view."""
    image = open_rgb(path, draft_size=size)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def iter_batches(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    batch_size: int = 32,
    threads: int | None = None,
    prefetch: int = 1,
) -> Iterator[np.ndarray]:
    """Yield ``(n, size, size, 3)`` uint8 batches, decoding ``prefetch`` batches ahead in a thread pool.

    While the caller runs batch *i* through its model, the pool is already decoding
    batch *i + 1*, so decode time hides behind inference. Raises
    :class:`ImageDecodeError` (for the first bad file, in order) when a file cannot be read.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    threads = threads or cpu_count()
    paths = list(paths)  # positional slicing, whatever sequence (a pandas Series, an array) came in
    starts = range(0, len(paths), batch_size)
    if not starts:
        return

    def decode_into(out: np.ndarray, index: int, path: str | os.PathLike[str]) -> None:
        out[index] = load_image(path, size)

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tuwen-decode")
    try:
        pending: deque[tuple[np.ndarray, list[Future[None]]]] = deque()

        def submit(start: int) -> None:
            chunk = paths[start : start + batch_size]
            out = np.empty((len(chunk), size, size, 3), dtype=np.uint8)
            pending.append((out, [pool.submit(decode_into, out, i, p) for i, p in enumerate(chunk)]))

        upcoming = iter(starts)
        for start in upcoming:
            submit(start)
            if len(pending) > prefetch:
                break
        while pending:
            out, futures = pending.popleft()
            for future in futures:
                future.result()  # re-raises the worker's ImageDecodeError
            next_start = next(upcoming, None)
            if next_start is not None:
                submit(next_start)  # queue the next batch before handing this one to the model
            yield out
    finally:  # also on an error or an abandoned generator: drop the decodes nobody will read
        pool.shutdown(wait=True, cancel_futures=True)


def tune_malloc() -> bool:
    """Keep glibc from returning freed tensor memory to the OS after every batch.

    By default glibc serves large allocations with fresh ``mmap`` pages and trims the
    heap eagerly, so every conv layer's output pays for page faults and zeroing again;
    on these 2-core machines that halves PyTorch's throughput. Equivalent to starting
    Python with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>``. The price is that
    the process keeps its peak heap. Set ``TUWEN_NO_MALLOC_TUNING=1`` to opt out.
    Returns whether the options were applied.
    """
    if not sys.platform.startswith("linux") or os.environ.get("TUWEN_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok_mmap = libc.mallopt(m_mmap_max, 0)
        ok_trim = libc.mallopt(m_trim_threshold, 2**31 - 1)
        return bool(ok_mmap and ok_trim)
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False


def cache_dir() -> Path:
    """Where derived artefacts (exported ONNX graphs) live: ``$TUWEN_CACHE`` or ``~/.cache/tuwen``."""
    return Path(os.environ.get("TUWEN_CACHE") or Path.home() / ".cache" / "tuwen")


def file_digest(path: str | os.PathLike[str], *extra: str) -> str:
    """Short content hash of a weights file plus any strings that also shape the output (versions)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


class CnnImageEncoder:
    """Base for pretrained CNN encoders: file paths -> pooled features, via ONNX Runtime or torch.

    Subclasses supply ``_network()``: a torch module taking a ``(n, size, size, 3)`` uint8
    batch and returning ``(n, dim)`` features, normalisation included. Putting the
    normalisation inside the network means one exported graph does everything after
    decoding, and the torch fallback runs the very same computation.

    ONNX Runtime is the default because on these CPUs it runs MobileNetV2 ~2-4x faster
    than eager PyTorch; the graph is exported once into :func:`cache_dir` under a name
    keyed by the weights' hash and the encoder version. ``backend="torch"`` (or
    ``device="cuda"``) skips ONNX; a failing export falls back to torch with a warning.
    """

    name: str = ""
    modality: Modality = "image"
    dim: int = 0
    version: str = ""
    size: int = 224
    weights_path: Path

    def __init__(
        self,
        batch_size: int = 32,
        threads: int | None = None,
        backend: Literal["onnx", "torch"] = "onnx",
        device: str = "cpu",
        prefetch: int = 1,
    ) -> None:
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', not {backend!r}")
        self.batch_size = batch_size
        self.threads = threads or cpu_count()
        self.device = device
        self.prefetch = prefetch
        self.backend: str = "torch" if device != "cpu" else backend
        self._run: Callable[[np.ndarray], np.ndarray] | None = None

    def _network(self) -> torch.nn.Module:
        raise NotImplementedError

    def encode(self, batch: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Features for image files, ``(len(batch), dim)`` float32; raises ImageDecodeError on a bad file."""
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        if not len(batch):
            return out
        run = self._runner()
        row = 0
        for pixels in iter_batches(batch, self.size, self.batch_size, self.threads, self.prefetch):
            out[row : row + len(pixels)] = run(pixels)
            row += len(pixels)
        return out

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Features for an already decoded ``(n, size, size, 3)`` uint8 batch."""
        return self._runner()(np.ascontiguousarray(pixels, dtype=np.uint8))

    # -- backends ---------------------------------------------------------------------------

    def _runner(self) -> Callable[[np.ndarray], np.ndarray]:
        if self._run is None:
            if self.backend == "onnx":
                try:
                    self._run = self._onnx_runner()
                except Exception as error:  # any exporter or runtime failure: torch still works
                    warnings.warn(f"{self.name}: ONNX Runtime unavailable ({error}); using PyTorch", stacklevel=3)
                    self.backend = "torch"
            if self._run is None:
                self._run = self._torch_runner()
        return self._run

    def onnx_path(self) -> Path:
        """The cached exported graph for these weights and this version (exported on first use).

        The key reads torch's version from its package metadata: importing torch only to name a file that
        is already there doubled the start-up of a short embedding run.
        """
        name, version = self._graph_identity()
        key = file_digest(self.weights_path, version, importlib.metadata.version("torch"))
        return cache_dir() / f"{name}-{key}.onnx"

    def _graph_identity(self) -> tuple[str, str]:
        """(name, version) of the fp32 network the exported graph holds."""
        return self.name, self.version

    def _export_onnx(self, target: Path) -> None:
        import torch

        target.parent.mkdir(parents=True, exist_ok=True)
        network = self._network().eval()
        example = torch.zeros((2, self.size, self.size, 3), dtype=torch.uint8)
        handle, temp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx", dir=target.parent)
        os.close(handle)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    network,
                    (example,),
                    temp,
                    input_names=["pixels"],
                    output_names=["features"],
                    dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                )
            os.replace(temp, target)  # atomic: a concurrent reader sees the old file or the whole new one
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def _onnx_model(self) -> Path:
        """The ONNX graph the runtime loads, exported on first use."""
        path = self.onnx_path()
        if not path.exists():
            self._export_onnx(path)
        return path

    def _onnx_runner(self) -> Callable[[np.ndarray], np.ndarray]:
        import onnxruntime as ort

        path = self._onnx_model()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning worker threads would steal the second core from the decode threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(pixels: np.ndarray) -> np.ndarray:
            return session.run(None, {"pixels": pixels})[0].astype(np.float32, copy=False)

        return run

    def _torch_runner(self) -> Callable[[np.ndarray], np.ndarray]:
        import torch

        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(f"{self.name}: CUDA requested but not available; using the CPU", stacklevel=4)
            device = torch.device("cpu")
        network = self._network().eval().to(device, memory_format=torch.channels_last)

        def run(pixels: np.ndarray) -> np.ndarray:
            with torch.no_grad(), torch_threads(self.threads):
                return network(torch.from_numpy(pixels).to(device)).float().cpu().numpy()

        return run


# -- int8 ----------------------------------------------------------------------------------------

# Part of every int8 encoder's ``version``: change it when the quantisation recipe or its calibration changes.
INT8_VERSION = "int8-ort-qdq-u8s8-perchannel-minmax-synthetic64-1"
CALIBRATION_IMAGES = 64


def calibration_pixels(size: int, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """Deterministic product-like pictures (shapes on a mostly light background, noise, blur) to calibrate on.

    Calibration only sets each activation's int8 range. Generated pictures keep the quantised model a pure
    function of the shipped weights (no download, no dependence on whichever catalog ran first), so every
    machine builds the same model and int8 vectors stay comparable across workspaces; calibrating on real
    catalog photos instead changed the mean cosine to the fp32 vectors only from 0.971 to 0.977.
    """
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        light = rng.random() < 0.7
        background = tuple(int(v) for v in (255 - rng.integers(0, 40, 3) if light else rng.integers(0, 256, 3)))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 6))):
            x0, y0 = (int(v) for v in rng.integers(0, size * 4 // 5, 2))
            x1, y1 = x0 + int(rng.integers(size // 10, size)), y0 + int(rng.integers(size // 10, size))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.rectangle if rng.integers(0, 2) else draw.ellipse)((x0, y0, x1, y1), fill=colour)
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(0, 25), (size, size, 3))
        noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        out[i] = np.asarray(noisy.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 2)))))
    return out


def quantize_onnx(source: Path, target: Path, size: int) -> None:
    """Quantise an fp32 image graph to int8 with ONNX Runtime's static quantiser, atomically into ``target``.

    QDQ format, uint8 activations and int8 per-channel weights (per-tensor weights wreck MobileNet's depthwise
    layers), MinMax ranges from :func:`calibration_pixels`. uint8 x int8 is the fast pairing on x86 with VNNI;
    on older x86 without VNNI ONNX Runtime's guide suggests ``reduce_range``, which this build does not use.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            pixels = calibration_pixels(size)
            self.batches = iter([{"pixels": pixels[i:i + 16]} for i in range(0, len(pixels), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.stem}-", dir=target.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        # (ONNX Runtime's calibrator holds every activation of every calibration picture until the end: the
        # one-time build peaks near 2 GB. Its ``CalibMaxIntermediateOutputs`` would bound that but discards the
        # ranges it collected in this version, so it is not used.)
        os.replace(quantized, target)  # atomic: a concurrent reader sees no file or the whole model


class QuantizedImageEncoder:
    """Mixin before a :class:`CnnImageEncoder`: the same network quantised to int8, run by ONNX Runtime.

    The int8 graph is built on first use from the fp32 graph (itself exported from the shipped weights), with
    no download, and cached beside it under a key of the fp32 graph's content and :data:`INT8_VERSION`. Its
    vectors are close to, not equal to, the fp32 ones, so the encoder has its own name (``<name>-int8``) and
    version, and :mod:`tuwen.encoders.cache` keeps its vectors in their own table.
    """

    @staticmethod
    def int8_version(fp32_version: str) -> str:
        return f"{fp32_version}-{INT8_VERSION}"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        if self.backend != "onnx":  # type: ignore[attr-defined]
            raise ValueError(f"{self.name}: int8 runs on ONNX Runtime only (CPU); "  # type: ignore[attr-defined]
                             f"use the fp32 encoder for backend='torch' or a GPU")

    def _graph_identity(self) -> tuple[str, str]:
        fp32 = next(c for c in type(self).__mro__  # the fp32 encoder this one quantises
                    if issubclass(c, CnnImageEncoder) and not issubclass(c, QuantizedImageEncoder))
        return fp32.name, fp32.version

    def int8_path(self) -> Path:
        """The cached int8 graph, keyed by the fp32 graph's content and the quantisation recipe."""
        import onnxruntime

        fp32 = CnnImageEncoder._onnx_model(self)  # type: ignore[arg-type]
        key = file_digest(fp32, INT8_VERSION, onnxruntime.__version__)
        return fp32.with_name(f"{fp32.stem}-int8-{key}.onnx")

    def _onnx_model(self) -> Path:
        path = self.int8_path()
        if not path.exists():
            quantize_onnx(CnnImageEncoder._onnx_model(self), path, self.size)  # type: ignore[arg-type, attr-defined]
        return path

    def _runner(self) -> Callable[[np.ndarray], np.ndarray]:
        if self._run is None:  # type: ignore[has-type]
            self._run = self._onnx_runner()  # type: ignore[attr-defined]  # no torch fallback: int8 is ONNX only
        return self._run
