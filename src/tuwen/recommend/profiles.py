"""Shopper interest profiles, segments, and ``forget`` (the right to be forgotten).

* :func:`profile` — what a shopper buys: top product types, colours and departments, price band,
  activity and recency, and a one-line summary a merchandiser can read. It reads the product
  attributes the catalog has (H&M ``product_type_name`` / ``colour_group_name`` /
  ``department_name``, Myntra ``articleType`` / ``baseColour`` / ``subCategory``, the synthetic
  ``category`` / ``colour``, else the category path), so it works on any ingested catalog.
  Purchases of products missing from the catalog (two thirds on the H&M sample) count for
  activity but not for tastes; the profile says how many it could read.
* :func:`segments` — k-means over profile vectors (shares of the top types, departments and
  colours + activity, recency, price), each segment labelled by what is most over-represented
  in it relative to all shoppers; sizes, a chart, and a ``segments`` table in the workspace.
* :func:`forget` — removes a shopper's interactions, reviews, user row and segment from the
  workspace in one transaction, rewrites those tables and deletes their old versions so the
  rows are physically gone (LanceDB keeps every version otherwise), removes the shopper's
  per-shopper state from every saved recommender and marks those models stale (their
  item-side parameters were learnt with the shopper's events: retrain to forget completely).
  The workspace remembers the shopper as a keyed hash (never the raw id), and every later
  ingest drops their rows, so re-ingesting old files does not bring them back.

Customer ids can be stored pseudonymised: :func:`pseudonymise` is a salted HMAC-SHA256 of the
raw id; ingest the pseudonyms and keep the salt outside the workspace. ``forget`` then takes the
pseudonym (``pseudonymise(raw_id, salt)``). The H&M ids are already SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tuwen.encoders.cache import vector_tables
from tuwen.predict.vectors import cache_key
from tuwen.recommend.store import model_folders, scrub_model
from tuwen.store.workspace import Workspace

TYPE_KEYS = ("product_type_name", "articleType", "product_type", "type", "category")
COLOUR_KEYS = ("colour_group_name", "baseColour", "colour", "color")
DEPARTMENT_KEYS = ("department_name", "subCategory", "department", "section_name")
SEGMENT_SCHEMA = pa.schema([("user_id", pa.string()), ("segment", pa.int64()), ("label", pa.string())])
PRICE_BANDS = ("budget", "mid-price", "premium")


def pseudonymise(user_id: str, salt: str) -> str:
    """Salted HMAC-SHA256 of a customer id (hex): stable per salt, not reversible without it."""
    return hmac.new(salt.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------------------- product facts


def parse_attributes(products: pd.DataFrame) -> list[dict[str, Any]]:
    """Each product's ``attributes`` JSON as a dict (``{}`` when it has none), in row order."""
    return [json.loads(a) if isinstance(a, str) and a else {} for a in products["attributes"]]


def product_facts(products: pd.DataFrame, attrs: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per product id: type, colour, department, price (empty string / NaN when unknown).

    ``attrs``: the rows' attributes already parsed (:func:`parse_attributes`), for a caller that reads other
    keys too: parsing the JSON of a large catalog costs more than everything else here.
    """
    attrs = parse_attributes(products) if attrs is None else attrs

    def first(keys: tuple[str, ...], fallback: pd.Series | None = None) -> list[str]:
        out = []
        for k, a in enumerate(attrs):
            value = next((str(a[key]) for key in keys if a.get(key) not in (None, "")), "")
            if not value and fallback is not None:
                value = fallback.iloc[k]
            out.append(value)
        return out

    category = products["category"].fillna("").astype(str)
    last_part = category.str.split(">").str[-1].str.strip()
    first_part = category.str.split(">").str[0].str.strip()
    return pd.DataFrame({
        "type": first(TYPE_KEYS, last_part), "colour": first(COLOUR_KEYS),
        "department": first(DEPARTMENT_KEYS, first_part), "price": products["price"].astype(float).to_numpy(),
    }, index=products["id"].astype(str))


# ------------------------------------------------------------------------------------------------ profile


@dataclass
class Profile:
    """A shopper's interests, as numbers and as one readable sentence."""
    user: str
    purchases: int
    events: int
    with_catalog_info: int
    first_purchase: str | None
    last_purchase: str | None
    days_since_last: float | None
    top_types: list[tuple[str, float]] = field(default_factory=list)
    top_colours: list[tuple[str, float]] = field(default_factory=list)
    top_departments: list[tuple[str, float]] = field(default_factory=list)
    median_price: float | None = None
    price_band: str | None = None
    price_percentile: float | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("top_types", "top_colours", "top_departments"):
            data[key] = [{"name": n, "share": round(s, 3)} for n, s in data[key]]
        return data


def _top(values: pd.Series, n: int) -> list[tuple[str, float]]:
    values = values[values.astype(bool)]
    if values.empty:
        return []
    counts = values.value_counts()
    return [(str(k), float(v) / len(values)) for k, v in counts.head(n).items()]


def build_profile(user: str, events: pd.DataFrame, facts: pd.DataFrame, now: pd.Timestamp | None = None,
                  top: int = 3, catalog_prices: pd.Series | None = None) -> Profile:
    """The profile of one shopper from their events and the product facts (every product's, or only the shopper's
    with ``catalog_prices``, every product's price, for where the shopper's prices sit in the catalog)."""
    events = events[events["user_id"] == user]
    purchases = events[events["kind"] == "purchase"]
    basis = purchases if len(purchases) else events
    known = basis[basis["product_id"].isin(facts.index)]
    rows = facts.loc[known["product_id"]]
    times = pd.to_datetime(basis["timestamp"], utc=True)
    now = now or (pd.Timestamp.now(tz="UTC"))
    prices = rows["price"].dropna()
    catalog_prices = (facts["price"] if catalog_prices is None else catalog_prices).dropna()
    median_price = float(prices.median()) if len(prices) else None
    percentile = float((catalog_prices < median_price).mean()) if median_price is not None and len(catalog_prices) \
        else None
    band = None if percentile is None else PRICE_BANDS[min(2, int(percentile * 3))]
    profile = Profile(
        user=user, purchases=len(purchases), events=len(events), with_catalog_info=len(known),
        first_purchase=str(times.min().date()) if len(times) else None,
        last_purchase=str(times.max().date()) if len(times) else None,
        days_since_last=round(float((now - times.max()).total_seconds() / 86400), 1) if len(times) else None,
        top_types=_top(rows["type"], top), top_colours=_top(rows["colour"], top),
        top_departments=_top(rows["department"], top), median_price=median_price, price_band=band,
        price_percentile=percentile,
    )
    profile.summary = summarise(profile)
    return profile


def summarise(p: Profile) -> str:
    """One sentence: what, which colours, how pricey, how active."""
    if not p.events:
        return f"{p.user}: no history in this workspace."
    parts = []
    if p.top_types:
        parts.append("buys mostly " + ", ".join(f"{n} ({s:.0%})" for n, s in p.top_types))
    if p.top_departments:
        parts.append("from " + ", ".join(n for n, _ in p.top_departments[:2]))
    if p.top_colours:
        parts.append("favourite colours " + ", ".join(n for n, _ in p.top_colours[:2]))
    if p.price_band:
        parts.append(f"{p.price_band} (median price at the {p.price_percentile:.0%} point of the catalog)")
    activity = f"{p.purchases} purchase{'s' if p.purchases != 1 else ''}"
    if p.days_since_last is not None:
        activity += f", last {p.days_since_last:.0f} days ago, since {p.first_purchase}"
    if p.with_catalog_info < max(p.purchases, p.events if not p.purchases else 0):
        activity += f"; tastes read from the {p.with_catalog_info} with catalog details"
    return f"{p.user[:16]}: " + ("; ".join(parts) + "; " if parts else "") + activity + "."


def profile(workspace: Workspace, user: str, top: int = 3) -> Profile:
    """The interest profile of one shopper in a workspace; unknown shopper → ``KeyError`` (CLI: exit 2).

    Reads the shopper's events and products with filters, and of the rest only the prices and the latest event
    time, streamed: at thirty million events the whole tables in pandas were gigabytes for one shopper's page."""
    events = workspace.read_keys("interactions", "user_id", [user])
    if events.empty:
        raise KeyError(f"no shopper {user!r} in {workspace.path} (no interactions)")
    products = workspace.read_keys("products", "id", events["product_id"])
    prices = pd.Series(workspace.read_arrow("products", ["price"]).column("price").to_numpy(zero_copy_only=False),
                       dtype=float)
    return build_profile(user, events, product_facts(products), latest_event(workspace), top, prices)


def latest_event(workspace: Workspace) -> pd.Timestamp:
    """The time of the workspace's latest event (the profile's "now"), one column streamed in slices."""
    latest = None
    for part in workspace.scan("interactions", ["timestamp"], batch_rows=1_000_000):
        value = pc.max(part.column("timestamp")).as_py()
        if value is not None and (latest is None or value > latest):
            latest = value
    return pd.to_datetime(latest, utc=True)


# ----------------------------------------------------------------------------------------------- segments


@dataclass
class Segments:
    """k-means segments of shoppers: assignment, labels, sizes, centres, and the chart's path."""
    assignment: pd.DataFrame  # user_id, segment, label
    labels: dict[int, str]
    sizes: dict[int, int]
    k: int
    silhouette: float | None
    chart: Path | None = None
    features: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"segment": s, "label": self.labels[s], "shoppers": self.sizes[s]}
                             for s in sorted(self.sizes, key=lambda s: -self.sizes[s])])


def profile_matrix(events: pd.DataFrame, facts: pd.DataFrame, n_top: int = 8,
                   min_purchases: int = 1) -> tuple[pd.DataFrame, list[str]]:
    """Shopper x feature matrix: shares of the top types/departments/colours, activity, recency, price."""
    purchases = events[events["kind"] == "purchase"] if (events["kind"] == "purchase").any() else events
    purchases = purchases.assign(timestamp=pd.to_datetime(purchases["timestamp"], utc=True))
    counts = purchases.groupby("user_id").size()
    users = counts[counts >= min_purchases].index
    purchases = purchases[purchases["user_id"].isin(users)]
    now = purchases["timestamp"].max()
    known = purchases[purchases["product_id"].isin(facts.index)]
    joined = known.join(facts, on="product_id")
    blocks = []
    for column in ("type", "department", "colour"):
        values = joined[joined[column].astype(bool)]
        top_values = values[column].value_counts().head(n_top).index
        shares = pd.crosstab(values["user_id"], values[column]).reindex(columns=top_values, fill_value=0)
        shares = shares.div(values.groupby("user_id").size(), axis=0)
        blocks.append(shares.add_prefix(f"{column}=").reindex(users).fillna(0.0))
    activity = pd.DataFrame({
        "activity=log_purchases": np.log1p(counts.reindex(users)),
        "activity=days_since_last": (now - purchases.groupby("user_id")["timestamp"].max()).dt.days.reindex(users),
    })
    price = joined.groupby("user_id")["price"].median().reindex(users)
    catalog = facts["price"].dropna().sort_values().to_numpy()
    activity["price=percentile"] = (np.searchsorted(catalog, price.fillna(np.nan)) / max(len(catalog), 1)
                                    if len(catalog) else 0.5)
    activity.loc[price.isna(), "price=percentile"] = np.nan
    matrix = pd.concat(blocks + [activity], axis=1)
    matrix = matrix.fillna(matrix.median(numeric_only=True)).fillna(0.0)
    return matrix, list(matrix.columns)


def _label(centre: pd.Series, overall: pd.Series, spread: pd.Series) -> str:
    """Name a segment by its most over-represented type / department / colour and its activity."""
    words = []
    for prefix in ("department", "type", "colour"):
        cols = [c for c in centre.index if c.startswith(prefix + "=")]
        if not cols:
            continue
        lift = (centre[cols] - overall[cols])
        best = lift.idxmax()
        if lift[best] > 0.03:
            words.append(best.split("=", 1)[1])
    z = (centre - overall) / spread.replace(0, 1)
    words.append("frequent" if z["activity=log_purchases"] > 0.5 else "occasional"
                 if z["activity=log_purchases"] < -0.5 else "regular")
    if z["activity=days_since_last"] > 0.5:
        words.append("lapsed")
    elif z["activity=days_since_last"] < -0.5:
        words.append("recent")
    if "price=percentile" in z and abs(z["price=percentile"]) > 0.5:
        words.append("premium" if z["price=percentile"] > 0 else "budget")
    return " · ".join(words)


def segments(workspace: Workspace, k: int | None = None, seed: int = 0, chart: bool = True, save: bool = True,
             k_range: tuple[int, int] = (3, 8)) -> Segments:
    """Cluster shoppers (k-means on standardised profile vectors); ``k=None`` picks k by silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    events = workspace.read("interactions")
    if events.empty:
        raise KeyError(f"{workspace.path}: no interactions, so no shoppers to segment")
    facts = product_facts(workspace.read("products"))
    matrix, names = profile_matrix(events, facts)
    if len(matrix) < 3:
        raise ValueError(f"{workspace.path}: only {len(matrix)} shopper(s); segments need at least 3")
    x = StandardScaler().fit_transform(matrix.to_numpy())
    candidates = [k] if k else list(range(k_range[0], min(k_range[1], len(matrix) - 1) + 1))
    best = None
    for n in candidates:
        model = KMeans(n_clusters=n, n_init=10, random_state=seed).fit(x)
        score = float(silhouette_score(x, model.labels_, sample_size=min(2000, len(x)), random_state=seed)) \
            if n > 1 else None
        if best is None or (score or -1) > (best[1] or -1):
            best = (model, score)
    model, score = best
    assignment = pd.DataFrame({"user_id": matrix.index.astype(str), "segment": model.labels_.astype(np.int64)})
    overall, spread = matrix.mean(), matrix.std()
    labels = {s: _label(matrix[model.labels_ == s].mean(), overall, spread) for s in range(model.n_clusters)}
    seen: Counter[str] = Counter()
    for s in sorted(labels):
        seen[labels[s]] += 1
        if seen[labels[s]] > 1:
            labels[s] = f"{labels[s]} ({seen[labels[s]]})"
    assignment["label"] = assignment["segment"].map(labels)
    sizes = assignment["segment"].value_counts().to_dict()
    result = Segments(assignment, labels, {int(s): int(n) for s, n in sizes.items()}, model.n_clusters, score,
                      None, names)
    if chart:
        result.chart = _chart(workspace.artifacts / "segments.png", x, model.labels_, result)
    if save:
        with workspace.transaction(f"segments k={model.n_clusters}") as writer:
            writer.upsert("segments", assignment, key="user_id", schema=SEGMENT_SCHEMA)
            writer.meta["segments"] = {"k": model.n_clusters, "labels": {str(s): v for s, v in labels.items()},
                                       "silhouette": score, "time": time.time()}
        # upsert keeps shoppers no longer present; rewrite so the table is exactly this run
        with workspace.transaction("segments: drop stale rows") as writer:
            _rewrite(workspace, writer, "segments", lambda frame: frame["user_id"].isin(assignment["user_id"]),
                     SEGMENT_SCHEMA)
    return result


def _chart(path: Path, x: np.ndarray, labels: np.ndarray, result: Segments) -> Path:
    """Sizes (bars) and a 2-D PCA map of the shoppers, coloured by segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    coords = PCA(n_components=2, random_state=0).fit_transform(x) if x.shape[1] >= 2 else np.c_[x, x]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(13, 5))
    table = result.table()
    bars.barh([f"{r.segment}: {r.label}" for r in table.itertuples()], table["shoppers"], color="#4a7bb7")
    bars.invert_yaxis()
    bars.set_xlabel("shoppers")
    bars.set_title(f"{result.k} shopper segments")
    for s in sorted(result.labels):
        mask = labels == s
        scatter.scatter(coords[mask, 0], coords[mask, 1], s=8, alpha=0.6, label=str(s))
    scatter.set_title("shoppers (PCA of profile vectors)")
    scatter.legend(title="segment", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------- forget

USER_TABLES = {"interactions": "user_id", "reviews": "user_id", "users": "id", "segments": "user_id",
               "profiles": "user_id"}


def _rewrite(workspace: Workspace, writer: Any, name: str, keep: Any, schema: pa.Schema | None = None) -> int:
    """Rewrite table ``name`` with only the rows where ``keep(frame)`` holds; returns rows removed.

    A rewrite (not a delete) puts the kept rows in new data files, so once old versions are
    cleaned up the removed rows are gone from disk too (a LanceDB delete only hides them).
    """
    table = workspace.table(name)
    frame = table.to_arrow().to_pandas()
    mask = keep(frame).to_numpy()
    removed = int((~mask).sum())
    if removed == 0:
        return 0
    schema = schema or table.schema
    kept = pa.Table.from_pandas(frame[mask].reset_index(drop=True), schema=schema, preserve_index=False)
    live = workspace.db.open_table(name)
    live.add(kept, mode="overwrite")
    writer.versions[name] = live.version
    return removed


def _tables_holding(workspace: Workspace, user: str) -> list[str]:
    """Tables with rows of ``user``: counted by a filter in LanceDB, not by reading a column of 30M ids."""
    return [name for name, column in USER_TABLES.items() if workspace.has_table(name)
            and workspace.count(name, _user_filter(column, user)) > 0]


def _user_filter(column: str, user: str) -> str:
    return f"`{column}` = '{user.replace(chr(39), chr(39) * 2)}'"


def shopper_review_ids(workspace: Workspace, user: str) -> list[str]:
    """Ids of the shopper's reviews: the vector cache and the quoted insights key rows by review, not by shopper."""
    if not workspace.has_table("reviews"):
        return []
    rows = workspace.table("reviews").search().where(_user_filter("user_id", user)).select(["id"]).limit(None)
    return [str(i) for i in rows.to_arrow().column("id").to_pylist()]


def _remove_review_vectors(workspace: Workspace, writer: Any, review_ids: list[str]) -> dict[str, int]:
    """The cached vectors of the shopper's review texts (``reviews:<id>`` in every vector table): a review's
    embedding is its text in another form, so it goes with the review."""
    key = cache_key("reviews")
    removed: dict[str, int] = {}
    for name in vector_tables(workspace):
        for start in range(0, len(review_ids), 500):
            listed = ", ".join("'" + key(i).replace("'", "''") + "'" for i in review_ids[start:start + 500])
            count = writer.erase(name, f"id IN ({listed})")
            if count:
                removed[name] = removed.get(name, 0) + count
    return removed


def _remove_user_rows(workspace: Workspace, writer: Any, name: str, column: str, user: str) -> int:
    """Remove one shopper's rows from the disk, not just from view: only the data files that held them are
    rewritten (:meth:`tuwen.store.writer.Writer.erase`), so the cost is that of those files, not of the table."""
    return writer.erase(name, _user_filter(column, user))


def forget(workspace: Workspace, user: str, record_unknown: bool = True) -> dict[str, Any]:
    """Remove everything of one shopper from the workspace; report what was removed and what is stale.

    Order: saved models first (each rewritten atomically without the shopper and marked stale),
    then the tables in one transaction that also records the shopper's keyed hash (so later
    ingests drop their rows), then old table versions are deleted. Running it again is
    safe; a crash part-way leaves at worst models that already forgot a shopper still in the data.
    ``record_unknown=False`` (the HTTP route) writes nothing for a shopper the workspace does not hold, so a
    client cannot fill the forgotten list with ids that may later belong to real shoppers.
    """
    report: dict[str, Any] = {"user": user, "rows_removed": {}, "models_scrubbed": [], "models_stale": [],
                              "other_artifacts_to_retrain": []}

    for folder in model_folders(workspace):
        if scrub_model(folder, user):  # the model saw the shopper: their state is removed, the model is stale
            report["models_scrubbed"].append(str(folder.relative_to(workspace.path)))
    report["models_stale"] = list(report["models_scrubbed"])
    if not record_unknown and not report["models_scrubbed"] and not _tables_holding(workspace, user):
        report["found"] = False
        return report
    present: list[str] = []
    with workspace.transaction("forget 1 shopper") as writer:
        present = _tables_holding(workspace, user)  # under the lock: rows an ingest just committed are seen
        # Remembered as a keyed hash even when nothing is found: a later ingest of old files drops their rows.
        writer.forget_shopper(user)
        if present or report["models_stale"]:
            reviewed = shopper_review_ids(workspace, user) if "reviews" in present else []
            report["rows_removed"].update(_remove_review_vectors(workspace, writer, reviewed))
            for name in present:
                report["rows_removed"][name] = _remove_user_rows(workspace, writer, name, USER_TABLES[name], user)
            stale = dict(workspace.manifest.get("meta", {}).get("stale_models", {}))
            for path in report["models_stale"]:
                stale[path] = {"reason": "a shopper was forgotten after training; retrain to forget completely",
                               "time": time.time()}
            writer.meta["stale_models"] = stale
        writer.purge.update(present)  # the removed rows' old versions go at once, not after the usual grace period
    chart = workspace.artifacts / "segments.png"
    if "segments" in present and chart.exists():
        chart.unlink()  # the map plots one dot per shopper; `tuwen segments` redraws it
        report["removed_files"] = [str(chart.relative_to(workspace.path))]
    report["other_artifacts_to_retrain"] = _other_trained_artifacts(workspace)
    report["found"] = bool(report["rows_removed"] or report["models_scrubbed"])
    return report


def _other_trained_artifacts(workspace: Workspace) -> list[str]:
    """Model folders outside ``artifacts/recommend`` (e.g. review-rating models) that may have seen the
    shopper's reviews or events; we cannot edit them, so we name them for retraining."""
    found = []
    for path in sorted(workspace.artifacts.iterdir()) if workspace.artifacts.exists() else []:
        if path.is_dir() and path.name not in {"recommend", "encoders"}:
            found.append(str(path.relative_to(workspace.path)))
    return found
