"""Skiff builtin plugin: the stack images apps build and run on (stack:*)."""

PLUGIN = "stack"  # the plugin's name: its entry point, properties and scratch key
