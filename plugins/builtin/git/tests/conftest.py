from pathlib import Path

import pytest

from skiff.testing.sshd import STUB_ENV

HERE = Path(__file__).parent


@pytest.fixture
def sshd_skiff_env():
    """Server side: the stub pipeline plus the gate plugin of these tests."""
    return {
        **STUB_ENV,
        "SKIFF_PLUGINS": STUB_ENV["SKIFF_PLUGINS"] + ",skiff_git_gate",
        "PYTHONPATH": str(HERE),
    }
