"""Skiff contrib plugin: persistent storage directories mounted into an app's containers."""

PLUGIN = "storage"  # the plugin's name: its entry point, properties and scratch key
