"""Skiff builtin plugin: SSH keys (ssh-keys:*) in the skiff account's authorized_keys."""
