"""Skiff contrib plugin: redis service containers that apps link to, on the service toolkit."""

PLUGIN = "redis"  # the plugin's name: its entry point, properties and scratch key
