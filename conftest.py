"""This repository's tests use Skiff's pytest plugin, ``skiff.testing``.

It is opt-in (no ``pytest11`` entry point); pytest accepts ``pytest_plugins`` only in the
rootdir's conftest, so this file loads it for every test under tests/ and plugins/.
"""

pytest_plugins = ["skiff.testing"]
