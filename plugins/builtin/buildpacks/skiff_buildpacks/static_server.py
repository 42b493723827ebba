"""A small static file server for the static buildpack: $PORT, no listings, no dotfiles."""
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "skiff-static"
    sys_version = ""

    def send_head(self):
        parts = [p for p in self.path.split("?", 1)[0].split("#", 1)[0].split("/") if p]
        if any(p.startswith(".") or p.startswith("%2e") or p.startswith("%2E") for p in parts):
            self.send_error(404)
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404)
        return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    port = int(os.environ.get("PORT", "5000"))
    handler = lambda *a, **kw: Handler(*a, directory=root, **kw)  # noqa: E731
    http.server.ThreadingHTTPServer(("0.0.0.0", port), handler).serve_forever()


if __name__ == "__main__":
    main()
