"""The S3 artifact store (AWS S3, SeaweedFS, MinIO and other S3-compatible servers) through boto3."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, NightscoreError, StorageError


class S3Store:
    """Artifacts under ``s3://bucket/prefix``.

    boto3 retries in ``standard`` mode; checksums are computed only when an operation requires them,
    which keeps uploads working on S3-compatible servers that reject the newer default checksums.
    A PUT or a multipart upload is invisible until complete, so objects appear only when whole.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        client: Any = None,
        public_endpoint_url: str | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("the S3 artifact URI names no bucket", where="NIGHTSCORE_ARTIFACT_URI", fix="use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        self._credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key} if access_key else {}
        self._region = region
        self._client = client
        # where a person's browser reaches the server (docker compose: localhost, not the service name)
        self.public_endpoint_url = public_endpoint_url or endpoint_url

    @classmethod
    def from_uri(cls, uri: str, **kw: Any) -> S3Store:
        rest = uri.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        return cls(bucket, prefix, **kw)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._new_client(self.endpoint_url)
        return self._client

    def _new_client(self, endpoint_url: str | None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self._region,
            **self._credentials,
            config=Config(
                retries={"mode": "standard", "max_attempts": 5},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                signature_version="s3v4",
                s3={"addressing_style": "path"} if endpoint_url else {},
            ),
        )

    def link(self, key: str, expires: int = 7 * 24 * 3600) -> str:
        """A presigned GET for the object, signed for the public endpoint (signing needs no network)."""
        client = self.client if self.public_endpoint_url == self.endpoint_url else self._new_client(self.public_endpoint_url)
        return str(client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=expires))

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"

    def key(self, uri: str) -> str:
        full = uri.removeprefix(f"s3://{self.bucket}/")
        return full.removeprefix(f"{self.prefix}/") if self.prefix else full

    def _fail(self, action: str, key: str, exc: Exception) -> NightscoreError:
        return StorageError(
            f"S3 {action} of {self.uri(key)} failed: {exc}",
            where=self.endpoint_url or "AWS S3",
            fix="check that the endpoint is up and AWS_ENDPOINT_URL names it, that the bucket exists, and the credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); then rerun",
        )

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                raise self._fail("bucket creation", "", exc) from None

    def put_file(self, key: str, path: Path, *, move: bool = False) -> str:
        try:
            self.client.upload_file(str(path), self.bucket, self._k(key))
        except Exception as exc:
            raise self._fail("upload", key, exc) from None
        if move:
            path.unlink(missing_ok=True)
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)
        except Exception as exc:
            raise self._fail("upload", key, exc) from None
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except Exception as exc:
            raise self._fail("download", key, exc) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail("lookup", key, exc) from None

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            keys.extend(self.key(f"s3://{self.bucket}/{o['Key']}") for o in page.get("Contents", []))
        return sorted(keys)

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="nightscore-") as tmp:
            dest = Path(tmp) / Path(key).name
            try:
                self.client.download_file(self.bucket, self._k(key), str(dest))
            except Exception as exc:
                raise self._fail("download", key, exc) from None
            yield dest
