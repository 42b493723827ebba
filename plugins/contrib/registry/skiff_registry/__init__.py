"""Skiff contrib plugin: release images pushed to a registry that other nodes pull (registry:*)."""

PLUGIN = "registry"  # the plugin's name: its entry point, properties and settings namespace
