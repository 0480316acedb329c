"""A workspace in an S3-compatible bucket (``s3://bucket/path``), so every node of a cluster reaches the same one.

The tables go through LanceDB's own object-storage support; what this module adds is the part LanceDB cannot do
for tuwen: the manifest ``tuwen.json`` and the writer lock, with the same guarantees as on a local disk.

* **The manifest commit stays atomic.** A PUT of one object is all-or-nothing on S3 (readers see the whole old
  manifest or the whole new one: there is no rename to do). Each PUT is also *conditional* on the ETag the writer
  last read (``If-Match``), so a writer that lost its lock cannot silently overwrite a newer commit: it fails.
* **One writer at a time, across machines.** The lock is an object created only if absent (``If-None-Match: *``),
  holding a lease. A lease left by a crashed writer expires (``TUWEN_S3_LEASE_S``, one hour by default) and is then
  taken over with a conditional PUT on its ETag, so two waiters cannot both take it.
* **Fitted artefacts stay on the local disk** of the machine that made them (``TUWEN_S3_CACHE``, by default
  ``~/.cache/tuwen/s3/BUCKET/PATH``): models and reports are written with ordinary file APIs.

Endpoint and credentials come from the ``storage_options`` given to the workspace, else from the usual
environment variables: ``AWS_ENDPOINT_URL`` (an S3-compatible server), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; ``AWS_ALLOW_HTTP=true``
allows a plain-HTTP endpoint. boto3 (the ``s3`` extra: ``pip install 'tuwen[s3]'``) does the manifest and lock
requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEME = "s3://"
LEASE_S = 3600.0  # a lock older than this is a crashed writer's (env TUWEN_S3_LEASE_S)
# storage option -> environment variable it defaults to (names as LanceDB / object_store read them)
OPTION_ENV = {
    "aws_endpoint": "AWS_ENDPOINT_URL",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "aws_region": "AWS_REGION",
    "allow_http": "AWS_ALLOW_HTTP",
}


class ObjectStoreError(RuntimeError):
    """The bucket cannot be reached, refused a request, or another writer changed the manifest."""


def is_remote(path: str | Path) -> bool:
    """True for ``s3://…`` (also as a ``Path``, which folds the double slash to ``s3:/…``)."""
    return str(path).startswith("s3:/")


def normalise(path: str | Path) -> str:
    """``s3://bucket/path`` without a trailing slash, whether it came as a string or through ``Path``."""
    text = str(path)
    rest = text[len("s3:"):].lstrip("/")
    if not rest or rest.startswith("/"):
        raise ObjectStoreError(f"{text}: expected s3://bucket/path")
    return SCHEME + rest.rstrip("/")


def storage_options(options: Mapping[str, str] | None = None) -> dict[str, str]:
    """LanceDB's storage options: those given, else the environment's (only the ones that are set)."""
    found = {key: os.environ[env] for key, env in OPTION_ENV.items() if os.environ.get(env)}
    if "aws_region" not in found and os.environ.get("AWS_DEFAULT_REGION"):
        found["aws_region"] = os.environ["AWS_DEFAULT_REGION"]
    found.update({k: str(v) for k, v in (options or {}).items()})
    if found.get("aws_endpoint", "").startswith("http://"):
        found.setdefault("allow_http", "true")
    return found


def _lease_s() -> float:
    value = os.environ.get("TUWEN_S3_LEASE_S", "")
    try:
        return float(value) if value.strip() else LEASE_S
    except ValueError as error:
        raise ObjectStoreError(f"TUWEN_S3_LEASE_S={value!r}: expected a number of seconds") from error


@dataclass
class S3Folder:
    """The manifest, lock and local artefact cache of a workspace at ``s3://bucket/prefix``."""

    uri: str
    options: dict[str, str]

    def __post_init__(self) -> None:
        self.uri = normalise(self.uri)
        self.bucket, _, self.prefix = self.uri[len(SCHEME):].partition("/")
        self.etags: dict[str, str] = {}  # object key -> ETag last read or written by this process
        self._client: Any = None

    @property
    def db_uri(self) -> str:
        return f"{self.uri}/db"

    def cache_folder(self) -> Path:
        """Where this machine keeps the workspace's artefacts (fitted encoders, models, reports)."""
        root = Path(os.environ.get("TUWEN_S3_CACHE") or Path.home() / ".cache" / "tuwen" / "s3")
        return root / self.bucket / self.prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as error:  # the optional extra
                raise ObjectStoreError(f"{self.uri}: s3:// workspaces need boto3: pip install 'tuwen[s3]'") from error
            self._client = boto3.client(
                "s3", endpoint_url=self.options.get("aws_endpoint") or None,
                aws_access_key_id=self.options.get("aws_access_key_id"),
                aws_secret_access_key=self.options.get("aws_secret_access_key"),
                aws_session_token=self.options.get("aws_session_token"),
                region_name=self.options.get("aws_region") or "us-east-1",
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                              connect_timeout=10, read_timeout=60))
        return self._client

    def _call(self, what: str, request: Any, **kwargs: Any) -> Any:
        """One S3 request; a refused condition is returned as ``None``, any other failure says which object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return request(Bucket=self.bucket, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"):
                return None
            raise ObjectStoreError(f"{self.uri}: {what} failed: {code or error}") from error
        except BotoCoreError as error:
            raise ObjectStoreError(f"{self.uri}: {what} failed: {error}") from error

    # ------------------------------------------------------------------ objects
    def exists(self, name: str) -> bool:
        return self._call(f"HEAD {name}", self.client.head_object, Key=self.key(name)) is not None

    def is_empty(self) -> bool:
        listing = self._call("LIST", self.client.list_objects_v2, Prefix=self.key(""), MaxKeys=1)
        if listing is None:
            return True
        return not listing.get("KeyCount", 0)

    def read_text(self, name: str) -> str:
        answer = self._call(f"GET {name}", self.client.get_object, Key=self.key(name))
        if answer is None:
            raise ObjectStoreError(f"{self.uri}/{name}: no such object")
        self.etags[name] = answer["ETag"]
        return answer["Body"].read().decode("utf-8")

    def write_text(self, name: str, text: str, create: bool = False) -> None:
        """Replace the object in one PUT, only if it is still the version this process last saw (or, with
        ``create``, only if it does not exist): a lost race fails instead of overwriting a newer commit."""
        condition = {"IfNoneMatch": "*"} if create or name not in self.etags else {"IfMatch": self.etags[name]}
        answer = self._call(f"PUT {name}", self.client.put_object, Key=self.key(name), Body=text.encode("utf-8"),
                            ContentType="application/json", **condition)
        if answer is None:
            raise ObjectStoreError(f"{self.uri}/{name}: changed by another writer since this process read it; "
                                   "nothing was overwritten (re-run to start from the newer state)")
        self.etags[name] = answer["ETag"]

    def folder_bytes(self, name: str) -> int:
        """Bytes stored under ``name/`` (every page of the listing)."""
        total, token = 0, None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call(f"LIST {name}", self.client.list_objects_v2, Prefix=self.key(name) + "/", **extra) \
                or {}
            total += sum(int(item.get("Size", 0)) for item in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not token:
                return total

    # --------------------------------------------------------------------- lock
    @contextlib.contextmanager
    def lock(self, timeout: float, name: str = ".lock") -> Iterator[None]:
        """Hold the workspace's writer lease while the block runs (see the module's docstring)."""
        lease = _lease_s()
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + timeout
        said = False
        while True:
            body = json.dumps({"owner": owner, "expires": time.time() + lease}).encode("utf-8")
            taken = self._call("PUT lock", self.client.put_object, Key=self.key(name), Body=body, IfNoneMatch="*")
            if taken is None:  # held: take it over only when the holder's lease ran out
                held = self._call("GET lock", self.client.get_object, Key=self.key(name))
                if held is not None and json.loads(held["Body"].read() or b"{}").get("expires", 0) < time.time():
                    taken = self._call("PUT lock", self.client.put_object, Key=self.key(name), Body=body,
                                       IfMatch=held["ETag"])
            if taken is not None:
                break
            if time.monotonic() >= deadline:
                raise ObjectStoreError(f"{self.uri}: another tuwen process is still writing to this workspace after "
                                       f"{timeout:g} s of waiting; try again when it is done (TUWEN_LOCK_TIMEOUT sets "
                                       "the wait)")
            if not said:
                print(f"waiting for another tuwen process writing to {self.uri}… (up to {timeout:g} s)",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        try:
            yield
        finally:  # only our own lease: one that expired and was taken over belongs to its new holder
            self._call("DELETE lock", self.client.delete_object, Key=self.key(name), IfMatch=taken["ETag"])
