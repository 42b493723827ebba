"""Skiff's service toolkit: a library that service plugins (redis, ...) are built on.

A plugin describes its kind of service once (:class:`skiff_services.kind.ServiceKind`):
the toolkit keeps the records (:mod:`.record`), runs the containers (:mod:`.engine`),
makes the ``KIND:*`` click commands with their access declarations (:mod:`.commandset`)
and the hook implementations that keep links right (:mod:`.hooks`). See docs/services.md.

It has no entry point of its own: it is not a plugin, so it cannot be disabled apart from
the services built on it, and each service plugin's hooks stay its own (disabling redis
disables exactly redis's commands and hooks).
"""
