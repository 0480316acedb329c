"""A workspace in an S3-compatible bucket (moto's server, started by the tests on loopback): the same data as on
disk, manifest commits that stay atomic and refuse a stale writer, and one writer at a time across processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.distributed.s3server import free_port, s3_server
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.encoders.cache import load_vectors
from tuwen.ingest.synthetic import generate_catalog
from tuwen.store.workspace import WorkspaceError

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_region": "us-east-1"}


@pytest.fixture(scope="module")
def storage() -> Iterator[dict[str, str]]:
    with s3_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="shop")
        yield {"aws_endpoint": endpoint, **CREDENTIALS}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog"), n_products=50, n_users=12, seed=3)


@pytest.fixture(autouse=True)
def local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUWEN_S3_CACHE", str(tmp_path / "s3-cache"))


def test_a_bucket_workspace_holds_what_a_folder_does(storage: dict[str, str], catalog: Path, tmp_path: Path) -> None:
    remote = Workspace("s3://shop/same", storage=storage)
    local = Workspace(tmp_path / "local")
    for ws in (remote, local):
        ws.ingest(preset="synthetic", path=catalog)
        ws.embed(image_encoder="color_histogram", text_encoder=None, progress=False)
    again = Workspace("s3://shop/same", create=False, storage=storage)  # a second process's view
    assert again.manifest["tables"] == remote.manifest["tables"]
    assert again.info()["workspace"] == "s3://shop/same"  # named by its URL, not by this machine's cache folder
    for name in ("products", "interactions"):
        mine, theirs = again.read(name).sort_values("id"), local.read(name).sort_values("id")
        assert list(mine["id"]) == list(theirs["id"]) and len(mine) > 0
    ids_r, vec_r = load_vectors(again, "color_histogram")
    ids_l, vec_l = load_vectors(local, "color_histogram")
    order_r, order_l = np.argsort(ids_r), np.argsort(ids_l)
    assert sorted(ids_r) == sorted(ids_l)
    np.testing.assert_allclose(vec_r[order_r], vec_l[order_l], atol=1e-6)
    # embedding again is served from the cache in the bucket
    assert again.embed(image_encoder="color_histogram", text_encoder=None, progress=False) == {
        "color_histogram/image": {"embedded": 0, "cached": 50}}


def test_a_failed_write_leaves_the_committed_state(storage: dict[str, str], catalog: Path) -> None:
    ws = Workspace("s3://shop/rollback", storage=storage)
    ws.ingest(preset="synthetic", path=catalog)
    before = dict(ws.manifest["tables"])
    products = ws.read("products")
    with pytest.raises(RuntimeError, match="crash"), ws.transaction("half a write") as writer:
        writer.upsert("products", products.assign(title="overwritten"))
        raise RuntimeError("crash mid-write")
    reopened = Workspace("s3://shop/rollback", create=False, storage=storage)
    assert set(reopened.manifest["tables"]) == set(before)  # rolled back by restoring: a newer version, same rows
    assert reopened.read("products").sort_values("id").reset_index(drop=True).equals(
        products.sort_values("id").reset_index(drop=True))


def test_a_stale_writer_cannot_overwrite_a_newer_manifest(storage: dict[str, str], catalog: Path) -> None:
    first = Workspace("s3://shop/race", storage=storage)
    first.ingest(preset="synthetic", path=catalog)
    stale = Workspace("s3://shop/race", create=False, storage=storage)  # read the manifest, then fell asleep
    with first.transaction("newer") as writer:
        writer.meta["marker"] = "newer"
    with pytest.raises(WorkspaceError, match="changed by another writer"):
        stale._save_manifest({**stale.manifest, "meta": {"marker": "stale"}})
    assert Workspace("s3://shop/race", create=False, storage=storage).manifest["meta"]["marker"] == "newer"


def test_one_writer_at_a_time_and_a_dead_writers_lease_expires(storage: dict[str, str], catalog: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    holder = Workspace("s3://shop/lock", storage=storage)
    waiter = Workspace("s3://shop/lock", create=False, storage=storage, lock_timeout=0.5)
    with holder.transaction("long write"), pytest.raises(WorkspaceError, match="another tuwen process"), \
            waiter.transaction("second writer"):
        pass
    monkeypatch.setenv("TUWEN_S3_LEASE_S", "0")  # every lease taken from now on is already over: a dead writer's
    with pytest.raises(WorkspaceError, match="changed by another writer"), \
            holder.transaction("a writer that stalls past its lease"):
        with waiter.transaction("takes the expired lease") as writer:
            writer.meta["taken_over"] = True
        # the stalled writer wakes up: its commit is refused, not written over the newer one
    assert Workspace("s3://shop/lock", create=False, storage=storage).manifest["meta"]["taken_over"] is True


def test_bad_addresses_say_what_is_wrong(storage: dict[str, str]) -> None:
    with pytest.raises(WorkspaceError, match="not a tuwen workspace"):
        Workspace("s3://shop/nothing-here", create=False, storage=storage)
    with pytest.raises(Exception, match="expected s3://bucket/path"):
        Workspace("s3://", storage=storage)


def test_the_command_line_reaches_a_bucket_through_the_environment(storage: dict[str, str], catalog: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace("s3://shop/cli", storage=storage).ingest(preset="synthetic", path=catalog)
    for option, variable in (("aws_endpoint", "AWS_ENDPOINT_URL"), ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                             ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"), ("aws_region", "AWS_REGION")):
        monkeypatch.setenv(variable, storage[option])
    result = CliRunner().invoke(app, ["info", "s3://shop/cli", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["products"] == 50
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = CliRunner().invoke(app, ["info", "s3://shop/cli", "--json"])
    assert result.exit_code == 2 and "s3://shop/cli" in result.output  # one readable line, no traceback
    assert "Traceback" not in result.output
