"""Skiff builtin plugin: access lists (acl:*) of deployer keys, per app."""

PLUGIN = "acl"  # the plugin's name: its entry point, properties and scratch key
