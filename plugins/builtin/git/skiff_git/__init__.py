"""Skiff builtin plugin: git push deploys and the git source kind (git:*, deploy)."""
