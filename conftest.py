"""Root conftest: shared end-to-end fixtures for every test directory."""
pytest_plugins = [
    "tests.fixtures.docker",
    "tests.fixtures.sshd",
    "tests.fixtures.nginx",
]
