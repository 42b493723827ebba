"""Skiff builtin plugin: access lists (acl:*) of deployer keys, per app."""
