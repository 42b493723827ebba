"""catmeow: the demo app. ``/`` answers ``Cat dreams meow..`` (or ``$GREETING`` when set)."""
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return os.environ.get("GREETING") or "Cat dreams meow.."


@app.route("/health")
def health():
    return "ok"
