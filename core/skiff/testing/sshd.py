"""pytest fixtures: sshd, for end-to-end tests (filled by the issue that needs it)."""
