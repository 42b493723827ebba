"""Exceptions that the CLI turns into one ``!     message`` line and exit 1."""


class SkiffError(Exception):
    """A user-facing error: its message is printed on one line, no traceback."""

    exit_code = 1


class ValidationError(SkiffError):
    """Bad input (an app name, a config key, a Procfile line, ...)."""


class NotFound(SkiffError):
    """A named thing (app, release, plugin) does not exist."""


class LockTimeout(SkiffError):
    """Another deploy of the same app held the lock for too long."""


class DeployError(SkiffError):
    """A deploy failed in one of its phases; the previous release keeps serving."""

    def __init__(self, phase: str, message: str):
        super().__init__(message)
        self.phase = phase
