"""A strict S3-compatible store for tests: a real HTTP server in front of moto that refuses
the flexible-checksum headers the way Backblaze B2 did (400 InvalidArgument), and records
every request it saw.

It answers both as the endpoint itself (origin-form requests) and as an HTTP forward proxy
(absolute-form requests, HTTP_PROXY): then the client may address a bucket by virtual host
name ("bkt.s3.test:port") that no DNS resolves, and moto reads the bucket from the Host.
"""

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REFUSED_PREFIXES = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


@dataclass
class Seen:
    method: str
    host: str
    path: str
    refused: str  # the header that got the request refused, "" if forwarded

    @property
    def operation(self) -> str:
        """The S3 operation of an object request (enough for the tests' assertions)."""
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        if self.method == "POST":
            return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        if self.method == "PUT":
            return "UploadPart" if "partNumber" in query else "PutObject"
        if self.method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        return {"GET": "GetObject", "HEAD": "HeadObject"}[self.method]


def refused_header(headers) -> str:
    for name in headers:
        lowered = name.lower()
        if lowered.startswith(REFUSED_PREFIXES):
            return lowered
        # Trailing checksums (aws-chunked uploads) announce themselves in x-amz-trailer.
        if lowered == "x-amz-trailer" and "checksum" in headers[name].lower():
            return lowered
    return ""


def _error_xml(header: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        "<Error><Code>InvalidArgument</Code>"
        f"<Message>Unsupported header '{header}' received for this API call.</Message></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args):  # quiet in test output
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        target = urlsplit(self.path)
        path = (
            self.path
            if not target.scheme
            else (target.path or "/") + (f"?{target.query}" if target.query else "")
        )
        host = self.headers.get("Host", "")
        body = self._body()
        refused = refused_header(self.headers)
        self.server.seen.append(Seen(self.command, host, path, refused))
        if refused:
            payload = _error_xml(refused)
            self.send_response(400)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.seen: list[Seen] = []


class StrictS3Proxy:
    """start() -> self; endpoint is its URL; seen lists the requests; stop() closes it."""

    def __init__(self, moto_endpoint: str):
        parts = urlsplit(moto_endpoint)
        self.server = _Server((parts.hostname, parts.port))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "StrictS3Proxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen

    def refused(self) -> list[Seen]:
        return [s for s in self.seen if s.refused]
