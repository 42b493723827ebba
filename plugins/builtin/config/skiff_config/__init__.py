"""Skiff builtin plugin: environment config (config:*)."""

PLUGIN = "config"  # the plugin's name: its entry point, properties and scratch key
