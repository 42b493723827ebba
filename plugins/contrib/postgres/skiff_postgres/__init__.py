"""Skiff contrib plugin: postgres service containers that apps link to."""
