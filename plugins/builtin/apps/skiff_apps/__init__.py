"""Skiff builtin plugin: app management (apps:*)."""

PLUGIN = "apps"  # the plugin's name: its entry point, properties and scratch key
