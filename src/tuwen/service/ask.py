"""``ask``: one entry point for a shopper's question, whatever it is about.

* A question about a product (``product=``, or a product id named in the words) is answered from what the shop
  knows about it (:mod:`tuwen.service.qa`): yes / no / unsure for a yes/no question, and the evidence quoted.
* A question that names no product, or comes with a photo ("this one but in blue?"), goes to product search with
  the filters its words imply (:mod:`tuwen.service.routing`).
* When the workspace has a trained message-routing model (``tuwen train WS --task intent``), the answer also says
  which intent the message was routed to and whether it needs a person.

``ask_file`` answers every question of a Q&A folder (``--preset amazon-qa``) in input order.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuwen.service.qa import Answerer, check_question, load_answerer
from tuwen.service.qa.answerer import DEFAULT_EVIDENCE, answerer_folder
from tuwen.service.routing import search_products
from tuwen.store.workspace import Workspace

MAX_K = 50
_ANSWERERS: dict[tuple[Any, ...], Answerer] = {}
_LOCK = threading.Lock()


def answerer_for(workspace: Workspace, train: bool = True, retrain: bool = False, progress: bool = False) -> Answerer:
    """The workspace's answerer, loaded once per committed state of its tables and saved answerer."""
    info = answerer_folder(workspace) / "answerer.json"
    tables = workspace.committed_tables()
    key = (str(Path(workspace.path).resolve()), tables.get("questions"), tables.get("reviews"),
           tables.get("products"), info.stat().st_mtime_ns if info.is_file() else None)
    with _LOCK:
        if retrain or key not in _ANSWERERS:
            answerer = load_answerer(workspace, train=train, retrain=retrain, progress=progress)
            key = key[:-1] + ((info.stat().st_mtime_ns if info.is_file() else None),)
            _ANSWERERS.clear()  # one workspace's answerer at a time: they hold every Q&A vector
            _ANSWERERS[key] = answerer
        return _ANSWERERS[key]


def named_product(question: str, products: set[str]) -> str | None:
    """A product id written in the question ("is B00123 waterproof?"), if exactly one is."""
    found = {w for w in re.findall(r"[\w\-.]+", question) if w in products}
    return found.pop() if len(found) == 1 else None


def ask(workspace: Workspace, question: str, product: str | None = None, image: str | Path | None = None,
        k: int = DEFAULT_EVIDENCE, train: bool = True) -> dict[str, Any]:
    """Answer a shopper's question (see the module docstring); ``train``: train the answerer now if the shop has Q&A
    and none is saved (the web server passes False and answers with what is saved)."""
    question = (question or "").strip()
    if not question and image is None:
        raise ValueError("empty question: ask something, or send a photo")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    answerer = answerer_for(workspace, train=train)
    if product is not None:
        product = str(product)
        if product not in answerer.knowledge.product_ids:
            raise KeyError(f"no product {product[:200]!r} in this workspace")
    elif image is None:
        product = named_product(question, answerer.knowledge.product_ids)
    out: dict[str, Any] = {"question": question, "answerer_trained": answerer.trained}
    if product is not None:
        check_question(question)
        out.update(answerer.answer(question, product, k=k))
        out["route"] = "answer"
    else:
        if question:
            check_question(question)
        out.update({"route": "search", "product": None, "answer": None, "evidence": [],
                    "search": search_products(workspace, question, image, k=max(k, 10))})
    routed = route_message(workspace, question)
    if routed is not None:
        out["intent"] = routed
    return out


def ask_file(workspace: Workspace, folder: str | Path, preset: str = "amazon-qa", k: int = DEFAULT_EVIDENCE,
             progress: bool = False) -> Iterator[dict[str, Any]]:
    """Answers to every question of a Q&A folder laid out like ``preset``'s, in input order: ``id``, ``asin``,
    ``answer`` (yes / no / unsure, ``None`` for open questions), ``p_yes`` and ranked ``evidence``. Questions about
    products the shop does not know are answered from other products' Q&A and the question alone."""
    from tuwen.ingest import load_preset
    from tuwen.util.progress import progress_bar

    batch = load_preset(preset, Path(folder))
    questions = batch.questions
    if questions is None:
        raise ValueError(f"preset {preset!r} holds no questions; use --preset amazon-qa")
    for reject in batch.rejects[:20]:  # a rejected line has no answer line: say which and why
        print(f"skipped: {reject}", file=sys.stderr)
    if len(batch.rejects) > 20:
        print(f"skipped: … {len(batch.rejects) - 20} more rejected lines", file=sys.stderr)
    questions = questions.assign(_order=questions["id"].map(_order)).sort_values("_order", kind="stable")
    answerer = answerer_for(workspace, progress=progress)
    rows = [{"id": str(r.id), "question": str(r.question), "product": str(r.product_id),
             "question_type": str(r.question_type or "")} for r in questions.itertuples(index=False)]
    with progress_bar(len(rows), "ask · answering", progress) as advance:
        for lo in range(0, len(rows), 256):
            chunk = rows[lo:lo + 256]
            for row, answered in zip(chunk, answerer.answer_many(chunk, k, advance, strict=False), strict=True):
                yield {"id": row["id"], "asin": row["product"], "question": row["question"],
                       "question_type": answered["question_type"], "answer": answered["answer"],
                       "p_yes": answered["p_yes"], "evidence": answered["evidence"]}


def _order(value: Any) -> tuple[int, str]:
    text = str(value)
    return (int(text), text) if text.isdigit() else (1 << 62, text)


# ---------------------------------------------------------------------------------------------------- intent
def intent_model_name(workspace: Workspace) -> str | None:
    """The newest saved model of kind ``intent`` in the workspace, if any."""
    from tuwen.predict.predictor import saved_kind

    folder = Path(workspace.artifacts) / "models"
    found = []
    for config in folder.glob("*/config.json") if folder.is_dir() else []:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        task = data.get("task") if isinstance(data.get("task"), dict) else {}
        if saved_kind(data) == "intent" or task.get("name") == "intent":
            found.append((config.stat().st_mtime, config.parent.name))
    return max(found)[1] if found else None


def route_message(workspace: Workspace, message: str) -> dict[str, Any] | None:
    """The intent model's routing of a message (intent, category, confidence, needs a person), when the shop has
    one."""
    name = intent_model_name(workspace) if message else None
    if name is None:
        return None
    import pandas as pd

    config = Path(workspace.artifacts) / "models" / name / "config.json"
    model = _intent_model(workspace, name, config.stat().st_mtime_ns)
    frame = pd.DataFrame([{"id": "\0ask", "text": message, "title": "", "description": "", "product_id": "",
                           "image_paths": [], "has_image": False}])
    prediction = model.predict(frame, workspace)[0]
    shown = {k: prediction[k] for k in ("prediction", "category", "confidence", "needs_person") if k in prediction}
    return {"model": name, **{k: (v.item() if hasattr(v, "item") else v) for k, v in shown.items()}}


_INTENT_MODELS: dict[tuple[str, str, int], Any] = {}


def _intent_model(workspace: Workspace, name: str, stamp: int) -> Any:
    """A saved intent model, loaded once per version of its folder."""
    from tuwen.predict.registry import load_model

    key = (str(Path(workspace.path).resolve()), name, stamp)
    with _LOCK:
        if key not in _INTENT_MODELS:
            _INTENT_MODELS.clear()
            _INTENT_MODELS[key] = load_model(workspace, name)
        return _INTENT_MODELS[key]
