"""Skiff builtin plugin: the dockerfile builder (builder:*)."""

PLUGIN = "dockerfile"  # the plugin's name: its entry point, properties and scratch key
