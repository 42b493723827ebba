"""Skiff builtin plugin: app management (apps:*)."""
