"""Skiff builtin plugin: git push deploys and the git source kind (git:*, deploy)."""

PLUGIN = "git"  # the plugin's name: its entry point, properties and scratch key
