"""Counts visits in the linked redis with INCR: the standard library only, RESP over a socket."""

import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def redis(*args):
    url = urlsplit(os.environ["REDIS_URL"])
    with socket.create_connection((url.hostname, url.port or 6379), timeout=5) as sock:
        replies = sock.makefile("rb")

        def call(*parts):
            encoded = [p.encode() for p in parts]
            sock.sendall(b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded))
            line = replies.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode()
            if kind == b"-":
                raise RuntimeError(rest)
            if kind == b"$":
                return None if rest == "-1" else replies.read(int(rest) + 2)[:-2].decode()
            return int(rest) if kind == b":" else rest

        if url.password:
            call("AUTH", unquote(url.password))
        return call(*args)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if "REDIS_URL" not in os.environ:
            body = "no redis linked\n"
        elif self.path == "/visit":  # only visits count (not the deploy's checks of /)
            body = f"visits: {redis('INCR', 'visits')}\n"
        else:
            body = f"visits so far: {redis('GET', 'visits') or 0}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
