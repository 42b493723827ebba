"""A small static file server for the static buildpack: $PORT, no listings, no dotfiles.

It runs inside the app's image with the stack's python3 (any suite's), so it uses the
standard library only and no syntax newer than Python 3.8. A request path is refused
(404) when, once percent-decoded as many times as it takes (``%252e`` is ``%2e`` is
``.``), any of its segments starts with a dot (``.env``, ``.git/config``, ``..``), or
it holds a NUL, a backslash or another control character. The checked path is the one
served.
"""

import functools
import http.server
import os
import sys
import urllib.parse
from typing import Optional

MAX_DECODINGS = 8  # a path still changing after this many decodings is refused


def fully_decoded(path: str) -> Optional[str]:
    """``path`` percent-decoded until it no longer changes; ``None`` if that takes too long."""
    for _ in range(MAX_DECODINGS):
        decoded = urllib.parse.unquote(path)
        if decoded == path:
            return path
        path = decoded
    return None


def safe_path(request_path: str) -> Optional[str]:
    """The normalised, decoded path of a request (``/sub/page.html``), or ``None`` to refuse it."""
    path = request_path.split("?", 1)[0].split("#", 1)[0]
    decoded = fully_decoded(path)
    if decoded is None or "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return None
    segments = [s for s in decoded.split("/") if s]  # "//" and a leading "/" collapse
    if any(s.startswith(".") for s in segments):  # dotfiles, ".", ".."
        return None
    return "/" + "/".join(segments) + ("/" if segments and decoded.endswith("/") else "")


class Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "skiff-static"
    sys_version = ""

    def send_head(self):
        if safe_path(self.path) is None:
            self.send_error(404)
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        """The file of the path :func:`safe_path` accepted (the raw path is never decoded again)."""
        checked = safe_path(path)
        if checked is None:  # send_head refused it already; "" is no file
            return ""
        segments = [s for s in checked.split("/") if s]
        return os.path.join(self.directory, *segments) + ("/" if checked.endswith("/") else "")

    def list_directory(self, path):
        self.send_error(404)
        return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    port = int(os.environ.get("PORT", "5000"))
    handler = functools.partial(Handler, directory=root)
    http.server.ThreadingHTTPServer(("0.0.0.0", port), handler).serve_forever()


if __name__ == "__main__":
    main()
