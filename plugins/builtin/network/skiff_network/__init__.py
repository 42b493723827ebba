"""Skiff builtin plugin: networks apps share on purpose (network:*); every app is isolated otherwise."""

PLUGIN = "network"  # the plugin's name: its entry point, properties and settings namespace
