"""Skiff builtin plugin: the Procfile, the process table and the release task."""

PLUGIN = "procfile"  # the plugin's name: its entry point, properties and scratch key
