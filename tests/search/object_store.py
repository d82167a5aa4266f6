"""A local S3-compatible server for tests: moto's server mode (`moto[server]`, a dev dependency), started as a real
HTTP process on a free port, so boto3 and django-storages talk to it exactly as to a bucket in the cloud."""

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

BUCKET = "search-media"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    """Yield the endpoint URL of a fresh moto S3 server (its state lives in its process: gone when it stops)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def s3_options(endpoint: str, bucket: str = BUCKET) -> dict:
    """The storage's options as search/settings.py builds them from the AWS_* variables."""
    return {"bucket_name": bucket, "endpoint_url": endpoint, "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "region_name": "us-east-1", "addressing_style": None,
            "location": "", "file_overwrite": True, "default_acl": None, "querystring_auth": True,
            "max_memory_size": 2 * 1024 * 1024}


def s3_environment(endpoint: str, bucket: str = BUCKET) -> dict:
    """The environment a server process needs for SEARCH_MEDIA_BACKEND=s3 on this endpoint."""
    return {"SEARCH_MEDIA_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": bucket, "AWS_S3_ENDPOINT_URL": endpoint,
            **CREDENTIALS}


def make_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as endpoint:
        make_bucket(endpoint)
        yield endpoint


@pytest.fixture
def s3_media(settings, s3_endpoint):
    """SEARCH_MEDIA_BACKEND=s3 for one test, on an empty bucket of the session's server."""
    import boto3

    bucket = f"t{time.monotonic_ns()}"
    make_bucket(s3_endpoint, bucket)
    settings.SEARCH_S3_OPTIONS = s3_options(s3_endpoint, bucket)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "search.storage.s3_media.MediaS3Storage",
                                                          "OPTIONS": settings.SEARCH_S3_OPTIONS}}
    yield boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").Bucket(bucket)
