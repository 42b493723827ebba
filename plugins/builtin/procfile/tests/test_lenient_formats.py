"""app.json and Procfile as Heroku and Dokku accept them: comments, trailing commas, CRLF, a BOM."""

import json

import pytest

import skiff_procfile.plugin as procfile_plugin
from skiff import lifecycle
from skiff.errors import DeployError, ValidationError
from skiff.testing import DirReceiver, StubBuilder, StubScheduler, dir_source
from skiff_procfile import jsonc
from skiff_procfile.parse import parse_app_json, parse_procfile

# -- the JSON preprocessor -----------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('// top\n{"a": 1}', {"a": 1}),
        ('{"a": 1} // end', {"a": 1}),
        ('{"a": 1}\n// end without a newline', {"a": 1}),
        ('{"a": /* inline */ 1}', {"a": 1}),
        ('/* a\n * block\n * over lines */\n{"a": 1}', {"a": 1}),
        ('{"a": 1 /* ** stars ** */}', {"a": 1}),
        ('{"a": 1/**/}', {"a": 1}),
        ('{"a": [1, 2, 3,]}', {"a": [1, 2, 3]}),
        ('{"a": 1,}', {"a": 1}),
        ('{"a": {"b": [1,],},}', {"a": {"b": [1]}}),
        ('{"a": [1, // one\n  2, // two\n]}', {"a": [1, 2]}),
        ('{"a": [1, /* c */ ]}', {"a": [1]}),
        ('{"a": 1,\n  // the last key was removed\n}', {"a": 1}),
        ('{"a": [\n  "x",\r\n  "y",\r\n]\r\n}\r\n', {"a": ["x", "y"]}),
        ('\ufeff{"a": 1}', {"a": 1}),
        ('\ufeff// bom then comment\r\n{"a": [1,],}', {"a": [1]}),
        ("[]", []),
        ("{}", {}),
        ("[\n]", []),
    ],
)
def test_comments_trailing_commas_crlf_bom(text, expected):
    assert jsonc.loads(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "http://example.com/path",
        "a // not a comment",
        "/* not a comment */",
        "ends with a slash /",
        "[1,]",
        "{,}",
        "a,]b",
        "a, }",
        'quote \\" then // still inside',
        'escaped quote at the end \\"',
        "backslash at the end \\\\",
        'backslash then quote \\\\" ',  # not valid on its own: only inside the json.dumps below
        "\\/\\/ escaped slashes",
        "tab\tand unicode é ☃ \\u00e9",
        "*/ lone closer",
    ],
)
def test_strings_are_never_touched(value):
    for doc in ({"k": value}, [value, value], {"a": {"b": [value]}}):
        text = json.dumps(doc)
        assert jsonc.strip(text) == text
        assert jsonc.loads(text) == doc
        spaced = json.dumps(doc, indent=2).replace("\n", " // c\n", 1)
        assert jsonc.loads(spaced) == doc


def test_keys_with_comment_markers_are_kept():
    text = '{"//": "a comment key, as some app.json files have", "/*x*/": [1,], "a,]": 2,}'
    assert jsonc.loads(text) == {"//": "a comment key, as some app.json files have", "/*x*/": [1], "a,]": 2}


def test_strip_keeps_length_and_lines():
    text = '{\n  // one\n  "a": [1, /* two\n three */ 2,],\n}\n'
    stripped = jsonc.strip(text)
    assert len(stripped) == len(text)
    assert stripped.count("\n") == text.count("\n")
    assert "one" not in stripped and "two" not in stripped and "three" not in stripped
    assert json.loads(stripped) == {"a": [1, 2]}


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "Expecting ',' delimiter"),
        ('{\n  // comment\n  "a": ,\n}', 3, 8, "Expecting value"),
        ('{"a": [,]}', 1, 8, "Expecting value"),
        ("{,}", 1, 2, "Expecting property name"),
        ('{"a": [1,,]}', 1, 10, "Expecting value"),
        ('{"a": 1}\n/* never closed', 2, 1, "unterminated /* comment"),
        ('{"a": 1} / 2', 1, 10, "Extra data"),
        ('{"a": 1},', 1, 9, "Extra data"),
        ("{'a': 1}", 1, 2, "Expecting property name"),
        ('{"a": "line\nbreak"}', 1, 12, "Invalid control character"),
        ('{"a": "never closed}', 1, 7, "Unterminated string"),
        ("\ufeff{\r\n\r\n  x\r\n}", 3, 3, "Expecting property name"),
        ("", 1, 1, "Expecting value"),
        ("// only a comment\n", 2, 1, "Expecting value"),
        ("[" * 100_000 + "]" * 100_000, 1, 1, "nested too deeply"),
    ],
)
def test_errors_have_line_and_column(text, line, column, message):
    with pytest.raises(jsonc.JsoncError) as info:
        jsonc.loads(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in str(info.value)
    assert str(info.value).endswith(f"(at {line}:{column})")


# -- app.json ---------------------------------------------------------------------

DOKKU_STYLE = """\ufeff// app.json of a Dokku test app
{
  "name": "python-sample", // what the app is called
  /* deploy tasks,
     run in one-off containers */
  "scripts": {
    "dokku": {
      "predeploy": "touch /app/predeploy.test && echo 'http://x//y' /* not a comment */",
      "postdeploy": "echo done", // after the switch
    },
  },
  "healthchecks": {
    "web": [
      {"type": "startup", "name": "web check", "path": "/", "attempts": 2,}, // one check
    ],
  },
  "formation": {"web": {"quantity": 1,}, "worker": {"quantity": 0}},
  "env": {
    "SECRET_KEY": {"generator": "secret"}, // generated once
    "MODE": "prod",
  },
}
"""


def test_dokku_style_app_json_with_comments():
    for text in (DOKKU_STYLE, DOKKU_STYLE.replace("\n", "\r\n")):
        data = parse_app_json(text)
        assert data["scripts"]["dokku"] == {
            "predeploy": "touch /app/predeploy.test && echo 'http://x//y' /* not a comment */",
            "postdeploy": "echo done",
        }
        assert data["healthchecks"]["web"] == [{"type": "startup", "name": "web check", "path": "/", "attempts": 2}]
        assert data["formation"] == {"web": {"quantity": 1}, "worker": {"quantity": 0}}
        assert set(data["env"]) == {"SECRET_KEY", "MODE"}


def test_app_json_error_is_one_line_with_line_and_column():
    text = DOKKU_STYLE.replace('"MODE": "prod",', '"MODE": prod,')
    with pytest.raises(ValidationError) as info:
        parse_app_json(text)
    message = str(info.value)
    assert message == "app.json line 20: invalid JSON: Expecting value (at 20:13)"


def test_app_json_unterminated_comment():
    with pytest.raises(ValidationError, match=r"app.json line 2: invalid JSON: unterminated /\* comment \(at 2:3\)"):
        parse_app_json('{\n  /* "scripts": {}\n}\n')


# -- Procfile ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "web: python app.py\nworker: python worker.py\n",
        "web: python app.py\r\nworker: python worker.py\r\n",
        "web: python app.py\rworker: python worker.py\r",
        "\ufeffweb: python app.py\nworker: python worker.py",
        "\ufeffweb: python app.py\r\nworker: python worker.py",
        "# processes\n\nweb: python app.py\n\n  # indented comment\n\t\nworker: python worker.py\n\n\n",
        "#!comment right after the hash\r\n\r\nweb:python app.py\r\n   worker :   python worker.py   \r\n",
        "\ufeff# a BOM, then a comment\r\nweb: python app.py\r\n#worker: old\r\nworker: python worker.py\r\n",
    ],
)
def test_procfile_shapes_heroku_and_dokku_accept(text):
    assert parse_procfile(text) == ({"web": "python app.py", "worker": "python worker.py"}, None)


def test_procfile_command_keeps_its_hash_and_colons():
    processes, release = parse_procfile("web: echo 'a#b' http://x:1 # trailing\r\nrelease: ./migrate\r\n")
    assert processes == {"web": "echo 'a#b' http://x:1 # trailing"}
    assert release == "./migrate"


@pytest.mark.parametrize(
    "text, message",
    [
        ("\ufeff# c\r\n\r\nweb: ok\r\noops\r\n", "Procfile line 4: expected 'name: command', got 'oops'"),
        ("web: ok\rweb: again\r", "Procfile line 2: duplicate process type web (first defined on line 1)"),
        ("\ufeff\r\nweb:\r\n", "Procfile line 2: process web has an empty command"),
        ("# c\n\n\nwe b: x\n", "Procfile line 4: invalid process name 'we b'"),
        ("\ufeff\ufeffweb: x\n", "Procfile line 1: invalid process name"),  # only one BOM is a BOM
    ],
)
def test_procfile_errors_still_name_the_line(text, message):
    with pytest.raises(ValidationError) as info:
        parse_procfile(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_form_feed_does_not_split_a_line():
    # only CR, LF and CRLF end lines, so line numbers are the editor's
    with pytest.raises(ValidationError, match="Procfile line 2: "):
        parse_procfile("web: a\x0cb\nbad\n")


# -- through a deploy ----------------------------------------------------------------


@pytest.fixture
def harness(skiff):
    h = skiff(DirReceiver(), ("procfile", procfile_plugin), StubBuilder(), StubScheduler())
    h.create_app("demo")
    return h


def test_deploy_reads_crlf_bom_files(harness, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_bytes(b"\xef\xbb\xbf# web only\r\n\r\nweb: python app.py\r\nrelease: ./migrate\r\n")
    (src / "app.json").write_bytes(DOKKU_STYLE.replace("\n", "\r\n").encode())
    release = lifecycle.deploy(harness.context, "demo", dir_source(src))
    assert release.processes == {"web": "python app.py"}
    assert release.meta["release_command"] == "./migrate"
    assert release.meta["app_json"]["scripts"]["dokku"]["postdeploy"] == "echo done"
    assert len(harness.state.get_config("demo")["SECRET_KEY"]) == 64


def test_deploy_with_broken_app_json_is_one_line(harness, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.json").write_text('{\n  // fine\n  "scripts": {"dokku": {"predeploy": "x",}},\n  oops\n}\n')
    with pytest.raises(DeployError) as info:
        lifecycle.deploy(harness.context, "demo", dir_source(src))
    assert str(info.value) == (
        "pre-build failed: app.json line 4: invalid JSON: Expecting property name enclosed in double quotes (at 4:3)"
    )
    assert harness.state.current_release("demo") is None


def _random_value(rng, depth=0):
    tricky = ['"', "\\", "/", "*", ",", "]", "}", "[", "{", ":", " ", "\n", "\t", "#", "a", "é", "\u2028"]
    kind = rng.randrange(6 if depth < 4 else 3)
    if kind == 0:
        return "".join(rng.choice(tricky) for _ in range(rng.randrange(12)))
    if kind == 1:
        return rng.choice([0, -1, 2.5, 1e10, True, False, None])
    if kind == 2:
        return "/" * rng.randrange(4) + "*" * rng.randrange(3)
    if kind == 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(_random_value(rng, 5)): _random_value(rng, depth + 1) for _ in range(3)}


def test_random_documents_round_trip():
    import random

    rng = random.Random(14)
    for _ in range(500):
        doc = {"v": _random_value(rng)}
        for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, indent=1)):
            assert jsonc.strip(text) == text
            assert jsonc.loads(text.replace("\n", "  // note, ] } /* x\n")) == doc
            assert jsonc.loads("/* lead */" + text.replace("\n", "\r\n") + "\r\n// tail") == doc
