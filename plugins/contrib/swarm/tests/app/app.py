"""Test web app: answers 'VERSION DYNO' (500 when the FAIL file exists)."""

import http.server
import os
import signal
import sys

VERSION = open("/app/VERSION").read().strip()
STATUS = 500 if os.path.exists("/app/FAIL") else 200


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"{VERSION} {os.environ.get('DYNO')}\n".encode()
        self.send_response(STATUS)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print(f"web {VERSION} listening on {os.environ['PORT']}", flush=True)
server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
