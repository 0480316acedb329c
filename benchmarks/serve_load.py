"""Load on a running ``tuwen serve``: N concurrent clients on loopback for a bounded time.

Starts ``tuwen serve`` on 127.0.0.1 (a free port, with an API key) over a workspace — ``--ws PATH``, or by
default a small SYNTHETIC shop built in a temporary folder (``--products``) — waits until it answers, then runs
``--clients`` threads for ``--seconds``, each sending a mix of requests: text search (with and without a
filter), photo search, similar, product, recommend with reasons, profile. Prints, per route and in all:
requests, errors (any status >= 500 or a failed connection; 4xx answers are counted apart), p50 and p99
latency, throughput, and the server's resident memory (RSS) after warm-up and after the load. Stops the server
at the end, whatever happens. ``--json`` prints the same as JSON.

Usage::

    python benchmarks/serve_load.py [--ws PATH] [--clients 8] [--seconds 20] [--products 300] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

KEY = "serve-load-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_workspace(root: Path, products: int) -> Path:
    """A small embedded, indexed SYNTHETIC shop with a trained recommender."""
    from tuwen import Workspace
    from tuwen.ingest.synthetic import generate_catalog
    from tuwen.search import IndexSettings

    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=generate_catalog(root / "catalog", n_products=products,
                                                        n_users=max(10, products // 5), seed=0, image_size=48))
    ws.embed(image_encoder="color_histogram", text_encoder="use_multilingual", progress=False)
    ws.index(settings=IndexSettings(image_encoder="color_histogram"), progress=False, learn=False)
    ws.train("recommend", model="content")
    return ws.path


def start_server(ws: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tuwen.cli", "serve", str(ws), "--host", "127.0.0.1", "--port", str(port),
               "--api-key", KEY]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tuwen serve exited with code {server.returncode} before answering")
        try:
            if httpx.get(f"{base}/api/info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"tuwen serve did not answer within {timeout:.0f} s")


def request_mix(ws: Path) -> list[tuple[str, Callable[[httpx.Client], httpx.Response]]]:
    """The routes a client picks from, uniformly."""
    from tuwen import Workspace

    workspace = Workspace(ws, create=False)
    ids = [str(i) for i in workspace.read("products", ["id"])["id"]]
    users = [str(u) for u in workspace.read("interactions", ["user_id"])["user_id"].unique()] or ["nobody"]
    words = ["red", "dress", "mug", "blue shirt", "红色", "striped", "gift", "round"]
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (180, 30, 40)).save(buffer, format="JPEG")
    photo = buffer.getvalue()
    shopper = {"X-API-Key": KEY}
    return [
        ("search", lambda c: c.get("/api/search", params={"q": random.choice(words), "k": 10})),
        ("search+filter", lambda c: c.get("/api/search", params={"q": random.choice(words), "k": 10,
                                                                 "where": "price < 80 AND has_image = true"})),
        ("search by photo", lambda c: c.post("/api/search", params={"mode": "image", "k": 10}, content=photo,
                                             headers={"Content-Type": "image/jpeg"})),
        ("similar", lambda c: c.get(f"/api/similar/{random.choice(ids)}", params={"k": 10})),
        ("product", lambda c: c.get(f"/api/products/{random.choice(ids)}")),
        ("recommend", lambda c: c.get(f"/api/recommend/{random.choice(users)}",
                                      params={"k": 12, "explain": True}, headers=shopper)),
        ("profile", lambda c: c.get(f"/api/profile/{random.choice(users)}", headers=shopper)),
    ]


def run_clients(base: str, mix: list[tuple[str, Callable[[httpx.Client], httpx.Response]]], clients: int,
                seconds: float) -> tuple[dict[str, list[tuple[float, int]]], float]:
    """Each client sends requests back to back until the time is up; (route → [(latency s, status)], wall s)."""
    results: dict[str, list[tuple[float, int]]] = {name: [] for name, _ in mix}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        random.seed(seed)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop:
                name, send = random.choice(mix)
                start = time.perf_counter()
                try:
                    status = send(http).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    results[name].append((time.perf_counter() - start, status))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return results, time.perf_counter() - started


def summarise(results: dict[str, list[tuple[float, int]]], wall: float) -> list[dict[str, Any]]:
    rows = []
    everything = [r for runs in results.values() for r in runs]
    for name, runs in [*results.items(), ("all", everything)]:
        latency = np.array([t for t, _ in runs]) * 1000 if runs else np.zeros(1)
        rows.append({"route": name, "requests": len(runs),
                     "errors": sum(1 for _, s in runs if s == 0 or s >= 500),
                     "4xx": sum(1 for _, s in runs if 400 <= s < 500),
                     "p50_ms": round(float(np.percentile(latency, 50)), 1),
                     "p99_ms": round(float(np.percentile(latency, 99)), 1),
                     "per_s": round(len(runs) / wall, 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ws", type=Path, help="a workspace to serve (default: a small synthetic one, built)")
    parser.add_argument("--products", type=int, default=300, help="size of the synthetic shop when no --ws")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.seconds > 600 or args.clients > 64:
        parser.error("keep it bounded: at most 600 seconds and 64 clients")
    with tempfile.TemporaryDirectory(prefix="tuwen-serve-load-") as folder:
        ws = args.ws or build_workspace(Path(folder), args.products)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(ws, port)
        try:
            wait_ready(base, server)
            mix = request_mix(ws)
            run_clients(base, mix, 2, 3.0)  # warm-up: encoders, recommender, jieba
            rss_before = rss_mb(server.pid)
            results, wall = run_clients(base, mix, args.clients, args.seconds)
            rss_after = rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    rows = summarise(results, wall)
    report = {"clients": args.clients, "seconds": round(wall, 1), "workspace": str(args.ws or "synthetic"),
              "products": None if args.ws else args.products, "cpus": os.cpu_count(),
              "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1), "routes": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"tuwen serve on loopback: {args.clients} clients for {wall:.1f} s, "
          f"server RSS {rss_before:.0f} MB -> {rss_after:.0f} MB")
    print(f"{'route':<16}{'requests':>9}{'errors':>8}{'4xx':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}")
    for row in rows:
        print(f"{row['route']:<16}{row['requests']:>9}{row['errors']:>8}{row['4xx']:>6}{row['p50_ms']:>9}"
              f"{row['p99_ms']:>9}{row['per_s']:>8}")


if __name__ == "__main__":
    main()
