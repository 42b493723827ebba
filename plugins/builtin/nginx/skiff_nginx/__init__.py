"""Skiff's nginx proxy: vhosts, port mappings, TLS and safe reloads."""
