"""Skiff builtin plugin: environment config (config:*)."""
