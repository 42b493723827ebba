"""Skiff's nginx proxy: vhosts, port mappings, TLS and safe reloads."""

PLUGIN = "nginx"  # the plugin's name: its entry point, properties and scratch key
