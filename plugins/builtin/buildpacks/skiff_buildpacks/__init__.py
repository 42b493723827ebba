"""Skiff builtin plugin: Heroku-style buildpacks (buildpacks:*) and the python, node and static packs."""

PLUGIN = "buildpacks"  # the plugin's name: its entry point, properties and scratch key
