"""Skiff builtin plugin: SSH keys (ssh-keys:*) in the skiff account's authorized_keys."""

PLUGIN = "ssh-keys"  # the plugin's name: its entry point, properties and scratch key

AUTHORIZED_KEYS_ENV = "SKIFF_AUTHORIZED_KEYS"  # the authorized_keys file, for tests and odd setups
