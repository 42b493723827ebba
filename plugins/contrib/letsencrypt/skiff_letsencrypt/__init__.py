"""Skiff contrib plugin: Let's Encrypt certificates (ACME v2, HTTP-01 answered by nginx)."""

PLUGIN = "letsencrypt"  # the plugin's name: its entry point, properties and settings namespace
