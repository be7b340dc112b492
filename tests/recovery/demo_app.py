"""A tiny application for the scenario-A runbook test: serves the number of workflows in its
PostgreSQL database (503 when it cannot read them), stops on POST /shutdown.

    python demo_app.py PORT DBNAME PIDFILE
"""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg

PORT, DBNAME, PIDFILE = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DBNAME,
                                 connect_timeout=3) as conn:  # fmt: skip
                n = conn.execute("SELECT count(*) FROM workflows").fetchone()[0]
        except psycopg.Error as exc:
            self._send(503, f"cannot read workflows: {type(exc).__name__}")
            return
        self._send(200, f"workflows={n}")

    def do_POST(self):
        if self.path != "/shutdown":
            self._send(404, "no")
            return
        self._send(202, "stopping")
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", PORT), Handler)
    with open(PIDFILE, "w") as f:
        f.write(str(os.getpid()))
    server.serve_forever()
    server.server_close()
