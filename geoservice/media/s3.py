"""The S3-compatible media store (MinIO, Ceph RGW, a cloud bucket), through the ``minio`` client.

Chosen with ``GEOSERVICE_MEDIA_STORE=s3``; see docs/field.md for the settings. Staging writes an
object under ``.staged/``; publishing copies it to its key server-side and removes the staged one
(S3 has no rename). An object store has no partial objects, so a reader never sees half a photo.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from geoservice.media.settings import MediaSettings
from geoservice.media.store import STAGED, checked_key

MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


class S3Store:
    """Objects in one bucket, made on first use if it is not there."""

    def __init__(self, settings: MediaSettings) -> None:
        secret = settings.media_s3_secret_key.get_secret_value() if settings.media_s3_secret_key else None
        self.client = Minio(
            str(settings.media_s3_endpoint),
            access_key=settings.media_s3_access_key,
            secret_key=secret,
            secure=settings.media_s3_secure,
            region=settings.media_s3_region,
        )
        self.bucket = settings.media_s3_bucket
        self._bucket_ready = False

    def _ready(self) -> None:
        if not self._bucket_ready:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
            self._bucket_ready = True

    def stage(self, data: bytes) -> str:
        self._ready()
        name = f"{uuid.uuid4().hex}.part"
        self.client.put_object(self.bucket, f"{STAGED}/{name}", io.BytesIO(data), len(data))
        return name

    def publish(self, staged: str, key: str) -> None:
        source = CopySource(self.bucket, f"{STAGED}/{staged}")
        self.client.copy_object(self.bucket, checked_key(key), source)
        self.discard(staged)

    def discard(self, staged: str) -> None:
        self.client.remove_object(self.bucket, f"{STAGED}/{staged}")  # S3 answers success for a missing key

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(self.bucket, checked_key(key))
        except S3Error as exc:
            if exc.code in MISSING:
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, checked_key(key))
        except S3Error as exc:
            if exc.code in MISSING:
                return False
            raise
        return True

    def sweep_staged(self, older_than_s: float) -> int:
        """As the local store's; removing an object another sweep removed first is a success in S3."""
        cutoff, removed = datetime.now(UTC) - timedelta(seconds=older_than_s), 0
        try:
            for item in self.client.list_objects(self.bucket, prefix=f"{STAGED}/"):
                if item.last_modified is not None and item.last_modified < cutoff and item.object_name:
                    self.client.remove_object(self.bucket, item.object_name)
                    removed += 1
        except S3Error as exc:
            if exc.code == "NoSuchBucket":  # no photo was ever stored: nothing staged either
                return 0
            raise
        return removed
