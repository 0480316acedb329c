"""What the two search benchmarks share: the attribute query sets (English + Chinese) and latency summaries.

Queries are built from the catalogs' own labels: H&M "<colour> <product type>" (relevant = both match),
fashion "<colour> <article type> for <gender>" (relevant = all three match); combinations with at least 5
products, sampled with seed 0 and split into halves A (for learning) and B (for reporting) by the seed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

SEED = 0
COLOURS_ZH = {
    "black": "黑色", "white": "白色", "dark blue": "深蓝色", "beige": "米色", "light beige": "浅米色",
    "light pink": "浅粉色", "blue": "蓝色", "grey": "灰色", "off white": "米白色", "dark grey": "深灰色",
    "light blue": "浅蓝色", "greenish khaki": "卡其绿", "gold": "金色", "pink": "粉色", "yellowish brown": "黄棕色",
    "dark green": "深绿色", "light grey": "浅灰色", "light orange": "浅橙色", "dark red": "深红色",
    "dark beige": "深米色",
    "yellow": "黄色", "green": "绿色", "red": "红色", "dark orange": "深橙色", "silver": "银色", "orange": "橙色",
    "light purple": "浅紫色", "dark pink": "深粉色", "light yellow": "浅黄色", "purple": "紫色", "navy blue": "藏青色",
    "brown": "棕色", "maroon": "酒红色", "olive": "橄榄绿", "cream": "奶油色", "khaki": "卡其色", "tan": "棕褐色",
    "charcoal": "炭灰色", "magenta": "洋红色", "lavender": "淡紫色", "peach": "桃色", "teal": "青色", "steel": "钢灰色",
}
TYPES_ZH = {
    "trousers": "裤子", "dress": "连衣裙", "sweater": "毛衣", "t-shirt": "T恤", "top": "上衣", "blouse": "女式衬衫",
    "jacket": "夹克", "underwear bottom": "内裤", "bra": "文胸", "skirt": "半身裙", "shirt": "衬衫", "vest top": "背心",
    "socks": "袜子", "hoodie": "连帽卫衣", "shorts": "短裤", "leggings/tights": "打底裤", "bikini top": "比基尼上衣",
    "cardigan": "开衫", "earring": "耳环", "blazer": "西装外套", "swimwear bottom": "泳裤", "bag": "包",
    "boots": "靴子",
    "necklace": "项链", "belt": "腰带", "sneakers": "运动鞋", "hat/beanie": "毛线帽", "swimsuit": "连体泳衣",
    "scarf": "围巾", "coat": "大衣", "sunglasses": "太阳镜", "sandals": "凉鞋", "pyjama set": "睡衣套装",
    "tshirts": "T恤", "shirts": "衬衫", "casual shoes": "休闲鞋", "watches": "手表", "sports shoes": "运动鞋",
    "tops": "上衣", "kurtas": "库尔塔长衫", "handbags": "手提包", "heels": "高跟鞋", "flip flops": "人字拖",
    "wallets": "钱包", "belts": "腰带", "sweaters": "毛衣", "sweatshirts": "卫衣", "formal shoes": "正装鞋",
    "jeans": "牛仔裤", "backpacks": "双肩包", "flats": "平底鞋", "jackets": "夹克", "caps": "棒球帽",
    "track pants": "运动裤", "ties": "领带", "dresses": "连衣裙", "clutches": "手拿包", "skirts": "半身裙",
    "earrings": "耳环", "leggings": "打底裤", "scarves": "围巾", "kurtis": "库尔蒂上衣",
}
GENDERS_ZH = {"men": "男士", "women": "女士", "boys": "男童", "girls": "女童", "unisex": "中性"}
SKIP_TYPES = {"unknown", "other accessories", "other", "garment set"}


def labels(ws) -> pd.DataFrame:  # noqa: ANN001
    """The catalog's attributes, one row per product id, lower-cased strings."""
    products = ws.read("products", ["id", "attributes"])
    table = pd.DataFrame([json.loads(a) for a in products["attributes"]], index=products["id"])
    return table.fillna("").map(lambda v: str(v).strip().lower())


def make_queries(table: pd.DataFrame, keys: list[str], english: Callable[[dict], str],
                 chinese: Callable[[dict], str | None], n: int) -> list[dict]:
    """Attribute combinations with >= 5 products as queries, both phrasings, split into halves A/B."""
    groups = table.groupby(keys).groups
    combos = [(combo if isinstance(combo, tuple) else (combo,), list(ids)) for combo, ids in groups.items()
              if len(ids) >= 5 and all(combo) and not set(combo) & SKIP_TYPES]
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(combos))[:n]
    out = []
    for rank, i in enumerate(order):
        combo, ids = combos[i]
        values = dict(zip(keys, combo, strict=True))
        half = "A" if rank % 2 == 0 else "B"
        example = str(rng.choice(ids))
        out.append({"lang": "en", "query": english(values), "relevant": set(ids), "half": half, "example": example})
        zh = chinese(values)
        if zh:
            out.append({"lang": "zh", "query": zh, "relevant": set(ids), "half": half, "example": example})
    return out


def hm_queries(table: pd.DataFrame, n: int) -> list[dict]:
    """H&M: "<colour> <product type>" / 黑色连衣裙."""
    def zh(v: dict) -> str | None:
        c, t = COLOURS_ZH.get(v["colour_group_name"]), TYPES_ZH.get(v["product_type_name"])
        return f"{c}{t}" if c and t else None

    return make_queries(table, ["colour_group_name", "product_type_name"],
                        lambda v: f"{v['colour_group_name']} {v['product_type_name']}", zh, n)


def fashion_queries(table: pd.DataFrame, n: int) -> list[dict]:
    """fashion: "<colour> <article type> for <gender>" / 男士黑色休闲鞋."""
    def zh(v: dict) -> str | None:
        c, t, g = COLOURS_ZH.get(v["basecolour"]), TYPES_ZH.get(v["articletype"]), GENDERS_ZH.get(v["gender"])
        return f"{g}{c}{t}" if c and t and g else None

    table = table.rename(columns=str.lower)
    return make_queries(table, ["basecolour", "articletype", "gender"],
                        lambda v: f"{v['basecolour']} {v['articletype']} for {v['gender']}", zh, n)


BUILDERS = {"hm": hm_queries, "fashion": fashion_queries}


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50 / p99 latency (ms) and queries per second (1 / mean)."""
    values = np.asarray(ms)
    return {"p50 ms": float(np.percentile(values, 50)), "p99 ms": float(np.percentile(values, 99)),
            "QPS": float(1000.0 / values.mean()), "n": len(values)}


def run_parts(args: Any, parts: dict[str, Callable[[Any], Any]]) -> None:
    """Run the parts named in ``--parts`` (e.g. "1,2") and write their results to ``--json`` when given."""
    wanted = {p.strip() for p in args.parts.split(",")}
    out = {f"part{name}": run(args) for name, run in parts.items() if name in wanted}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
