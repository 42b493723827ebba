"""pgapp: a tiny Flask app that keeps notes in the postgres database at DATABASE_URL.

GET  /        "pgapp: N notes" ("pgapp: no database linked" before a link)
POST /notes   body = the note; returns its id
GET  /notes   every note, one per line
"""

import os

import psycopg
from flask import Flask, request

app = Flask(__name__)

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)"


def connect() -> psycopg.Connection:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: link a database with postgres:link")
    return psycopg.connect(url, connect_timeout=5)


@app.route("/")
def index():
    if not os.environ.get("DATABASE_URL"):
        return "pgapp: no database linked\n"
    with connect() as conn:
        conn.execute(SCHEMA)
        count = conn.execute("SELECT count(*) FROM notes").fetchone()[0]
    return f"pgapp: {count} notes\n"


@app.route("/notes", methods=["POST"])
def add_note():
    body = request.get_data(as_text=True).strip()
    if not body:
        return "empty note\n", 400
    with connect() as conn:
        conn.execute(SCHEMA)
        note_id = conn.execute("INSERT INTO notes (body) VALUES (%s) RETURNING id", (body,)).fetchone()[0]
    return f"{note_id}\n", 201


@app.route("/notes")
def list_notes():
    with connect() as conn:
        conn.execute(SCHEMA)
        rows = conn.execute("SELECT body FROM notes ORDER BY id").fetchall()
    return "".join(f"{body}\n" for (body,) in rows)
