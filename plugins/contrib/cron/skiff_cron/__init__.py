"""Skiff contrib plugin: app.json cron jobs and the one runner of every periodic task."""

PLUGIN = "cron"  # the plugin's name: its entry point and properties
