"""A small HTTP server started by a test: scripted answers, records what it received."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self):
        self.requests = []  # (method, path, headers, body)
        self.script = []  # answers for the next requests: (status, body, delay)
        self.default = (200, "ok", 0.0)
        self.lock = threading.Lock()

    def next_answer(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def start_http_server():
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with recorder.lock:
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
            status, text, delay = recorder.next_answer()
            if delay:
                time.sleep(delay)
            payload = text.encode() if isinstance(text, str) else json.dumps(text).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.recorder = recorder
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server
