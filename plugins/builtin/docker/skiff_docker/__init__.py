"""Skiff's docker scheduler: runs releases as containers on the local engine.

The package is named ``skiff_docker`` so it never shadows the ``docker`` SDK,
which is imported lazily inside functions (``skiff --help`` stays fast).
"""

PLUGIN = "docker"  # the plugin's name: its entry point, properties and scratch key
