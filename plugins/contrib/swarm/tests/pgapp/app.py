"""Test web app of a swarm app linked to postgres: answers 'DYNO HOSTNAME NOTE', NOTE read with psql
through DATABASE_URL (the linked service's alias on the app's overlay network) on every request."""

import http.server
import os
import signal
import socket
import subprocess
import sys


def note() -> str:
    query = ["psql", os.environ["DATABASE_URL"], "-X", "-tA", "-c", "SELECT body FROM notes LIMIT 1"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=20)
    return done.stdout.strip() if done.returncode == 0 else "ERROR " + done.stderr.strip()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        text = note() if self.path == "/note" else "ok"
        body = f"{os.environ.get('DYNO')} {socket.gethostname()} {text}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
