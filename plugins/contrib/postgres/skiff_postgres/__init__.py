"""Skiff contrib plugin: postgres service containers that apps link to."""

PLUGIN = "postgres"  # the plugin's name: its entry point, properties and scratch key
