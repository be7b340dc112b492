"""An S3 API over HTTP (moto's server mode) that a test can stop and start again on one port."""

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIATESTFAULTS0000001"
SECRET_KEY = "s3-secret-key-for-fault-tests-0123456789"


class MotoS3:
    """moto's state lives in this process, so a restart on the same port keeps every object."""

    def __init__(self):
        self.server = None
        self.port = 0

    def start(self):
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        return self

    def reset(self):
        """Forget every bucket, object and upload (moto's state is global to this process)."""
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        ).close()
        return self

    def stop(self):
        """Stop answering and close the socket: clients get "connection refused", not a hang."""
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()
            self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
            ),
        )

    def objects(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def multipart_uploads(self, bucket: str) -> list[str]:
        return [
            u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        ]
