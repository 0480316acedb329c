"""The alignment inside a workspace: its (text, photo) pairs, training and saving it (``tuwen align``), a local
CLIP checkpoint configured instead, and loading it for search (its version is a digest of its files)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.encoders import encoder_names, get_encoder
from tuwen.encoders.cache import embed_workspace, load_vectors, table_name
from tuwen.encoders.defaults import IMAGE_ENCODERS, TEXT_ENCODER
from tuwen.search.align.aligner import FORMAT_VERSION, AlignConfig, Aligner
from tuwen.store.workspace import Workspace, as_workspace
from tuwen.util.folders import atomic_folder, read_info, write_info
from tuwen.util.progress import progress_bar
from tuwen.util.vectors import l2

ALIGN_DIR = "align"  # WS/artifacts/align

# ----------------------------------------------------------------------------------- workspace glue


@dataclass
class AlignData:
    """Paired frozen features read from a workspace: rows are products with both a photo and a title vector."""
    ids: list[str]
    titles: np.ndarray
    images: np.ndarray
    groups: np.ndarray
    descriptions: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict)


def image_features(workspace: Workspace, image_encoder: str) -> tuple[list[str], np.ndarray]:
    """Photo features of ``image_encoder``; ``a+b`` joins several encoders' vectors side by side.

    The default pairs MobileNetV2 (shape, texture) with the colour histogram: ImageNet features are
    trained to ignore colour, yet colour is the word shoppers type most ("black", "navy blue").
    Products missing from any of the encoders are left out.
    """
    parts = [load_vectors(workspace, name, "image") for name in encoder_names(image_encoder)]
    if len(parts) == 1:
        return parts[0]
    rows = [{pid: i for i, pid in enumerate(ids)} for ids, _ in parts]
    ids = [pid for pid in parts[0][0] if all(pid in r for r in rows)]
    return ids, np.hstack([vectors[[r[pid] for pid in ids]] for (_, vectors), r in zip(parts, rows, strict=True)])


def ensure_image_features(workspace: Workspace, image_encoder: str, progress: bool = True) -> None:
    """Embed the photos with any cheap encoder of ``image_encoder`` not in the workspace yet (colour histogram:
    ~400 photos/s); expensive ones (a CNN) must come from `tuwen embed` and are reported missing instead."""
    for name in encoder_names(image_encoder):
        if name == "color_histogram" and not workspace.has_table(table_name(name, "image")):
            embed_workspace(workspace, name, None, False, ("title", "description"), 256, progress)


def load_pairs(workspace: Workspace, text_encoder: str = TEXT_ENCODER, image_encoder: str = IMAGE_ENCODERS,
               fields: Sequence[str] = ("title", "description")) -> AlignData:
    """The (title[, description], photo) feature pairs of every product that has a photo and a title vector."""
    image_ids, image_vectors = image_features(workspace, image_encoder)
    title_ids, title_vectors = load_vectors(workspace, text_encoder, "title")
    title_row = {pid: i for i, pid in enumerate(title_ids)}
    keep = [i for i, pid in enumerate(image_ids) if pid in title_row]
    if len(keep) < 2:
        raise ValueError(f"{workspace.path}: fewer than 2 products have both a photo vector ({image_encoder}) and a "
                         f"title vector ({text_encoder}); run `tuwen embed` first")
    ids = [image_ids[i] for i in keep]
    titles = title_vectors[[title_row[pid] for pid in ids]]
    images = image_vectors[keep]
    products = workspace.read("products", ["id", "title"])
    title_text = dict(zip(products["id"], products["title"].fillna(""), strict=True))
    _, groups = np.unique(np.array([title_text.get(pid, pid).strip().lower() for pid in ids]), return_inverse=True)
    descriptions = None
    if "description" in fields:
        try:
            desc_ids, desc_vectors = load_vectors(workspace, text_encoder, "description")
        except KeyError:
            desc_ids, desc_vectors = [], None
        if desc_vectors is not None and len(desc_ids):
            desc_row = {pid: i for i, pid in enumerate(desc_ids)}
            descriptions = np.zeros_like(titles)
            for r, pid in enumerate(ids):
                if pid in desc_row:
                    descriptions[r] = desc_vectors[desc_row[pid]]
    return AlignData(ids, titles, images, groups, descriptions, {"text": text_encoder, "image": image_encoder})


def align_folder(workspace: Workspace) -> Path:
    return Path(workspace.artifacts) / ALIGN_DIR


def align_workspace(workspace: Workspace, text_encoder: str = TEXT_ENCODER, image_encoder: str = IMAGE_ENCODERS,
                    fields: Sequence[str] = ("title", "description"), config: AlignConfig | None = None,
                    clip: str | Path | None = None, progress: bool = True,
                    also: Sequence[Any] = ()) -> dict[str, Any]:
    """Train (or, with ``clip``, configure) the workspace's text↔image alignment; saved in ``WS/artifacts/align``.

    ``also``: other workspaces (or their folders) whose (text, photo) pairs join the training. A catalog
    whose names rarely say what the photo shows (H&M: "Zoe", "Granger HW") cannot teach "black" by itself;
    pairs from a catalog whose titles do name colours and types (fashion: "Men Black Casual Shoes") can,
    and the words and photo features live in the same frozen spaces. Only text and photos are borrowed,
    never labels. Their missing colour histograms are computed (and cached) in those workspaces.
    The model is written to a temporary sibling folder and swapped in, so a crash keeps the old one.
    Returns a report with the training time, the epochs' loss and the products used.
    """
    with atomic_folder(align_folder(workspace)) as tmp:
        if clip is not None:
            report = _configure_clip(workspace, Path(clip), tmp, progress)
        else:
            sources = [workspace, *(as_workspace(w) for w in also)]
            for source in sources:
                ensure_image_features(source, image_encoder, progress)
            data = _concat([load_pairs(source, text_encoder, image_encoder, fields) for source in sources])
            config = config or AlignConfig()
            aligner = Aligner(config)
            start = time.perf_counter()
            with progress_bar(config.epochs, "align · InfoNCE epochs", progress) as advance:
                aligner.fit(data.titles, data.images, data.groups, data.descriptions, advance)
            aligner.meta = {"text_encoder": text_encoder, "image_encoder": image_encoder, "pairs": len(data.ids),
                            "fields": list(fields), "trained_at": time.time(),
                            "also": [str(Path(getattr(w, "path", w))) for w in also]}
            aligner.save(tmp)
            report = {"kind": "trained", "pairs": len(data.ids), "seconds": round(time.perf_counter() - start, 1),
                      "final_loss": round(aligner.log[-1]["loss"], 4) if aligner.log else None,
                      "temperature": round(aligner.log[-1]["temperature"], 4) if aligner.log else None,
                      "dim": aligner.out_dim, "text_encoder": text_encoder, "image_encoder": image_encoder}
    return report


def _concat(parts: list[AlignData]) -> AlignData:
    """Pairs of several catalogs as one training set (title groups kept apart per catalog)."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *(int(p.groups.max()) + 1 for p in parts[:-1])])
    has_desc = any(p.descriptions is not None for p in parts)
    descriptions = np.vstack([p.descriptions if p.descriptions is not None else np.zeros_like(p.titles)
                              for p in parts]) if has_desc else None
    return AlignData([pid for p in parts for pid in p.ids], np.vstack([p.titles for p in parts]),
                     np.vstack([p.images for p in parts]),
                     np.concatenate([p.groups + off for p, off in zip(parts, offsets, strict=True)]), descriptions,
                     parts[0].sources)


def _configure_clip(workspace: Workspace, folder: Path, tmp: Path, progress: bool) -> dict[str, Any]:
    """Zero-shot alignment from a local CLIP checkpoint: embed the photos with its image tower, record the folder."""
    folder = folder.resolve()
    image_tower = get_encoder(f"{folder}:image")
    text_tower = get_encoder(f"{folder}:text")
    embed_workspace(workspace, f"{folder}:image", None, False, ("title", "description"), 256, progress)
    write_info(tmp / "align.json", "alignment", FORMAT_VERSION,
               {"kind": "clip", "folder": str(folder), "image_encoder": image_tower.name,
                "text_encoder": text_tower.name, "dim": image_tower.dim})
    return {"kind": "clip", "folder": str(folder), "dim": image_tower.dim}


@dataclass
class AlignmentModel:
    """What search needs from an alignment: which vectors to read and how to map text features and photos."""
    kind: str  # "trained" or "clip"
    text_encoder: str
    image_encoder: str
    version: str
    aligner: Aligner | None = None
    clip_folder: str | None = None

    def image_space(self, image_vectors: np.ndarray) -> np.ndarray:
        """Index vectors of stored photo features; rank by dot product with :meth:`text_space` vectors.

        A trained alignment adds one hubness-penalty dimension; a CLIP checkpoint's photo vectors are
        used as they are (unit length).
        """
        if self.aligner is not None:
            return self.aligner.index_images(image_vectors)
        return l2(image_vectors)

    def text_space(self, text_vectors: np.ndarray, csls: float = 0.0) -> np.ndarray:
        """Query vectors for features from ``text_encoder`` (pairs with :meth:`image_space`); ``csls``: the
        hubness penalty weight (trained alignments only)."""
        if self.aligner is not None:
            return self.aligner.query_texts(text_vectors, csls)
        return l2(text_vectors)


def content_version(folder: Path) -> str:
    """A digest of every file the alignment saved (names and bytes), as its version.

    The search index records the version it was built with and refuses a different one. File
    times would change on every copy, backup restore or sync (and object stores keep none), so a
    copied workspace would refuse to search; the bytes travel with the copy.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def load_alignment(workspace: Workspace) -> AlignmentModel | None:
    """The workspace's alignment, or ``None`` when `tuwen align` has not run."""
    folder = align_folder(workspace)
    path = folder / "align.json"
    if not path.exists():
        return None
    info = read_info(path, "alignment", FORMAT_VERSION, "run `tuwen align WS`")
    version = f"{info.get('kind')}-{content_version(folder)}"
    if info.get("kind") == "clip":
        clip_folder = info["folder"]  # text queries go through the folder's text tower; photos were embedded
        return AlignmentModel("clip", f"{clip_folder}:text", info["image_encoder"], version, None, clip_folder)
    aligner = Aligner.load(folder)
    meta = aligner.meta
    return AlignmentModel("trained", meta.get("text_encoder", TEXT_ENCODER),
                          meta.get("image_encoder", IMAGE_ENCODERS), version, aligner)
