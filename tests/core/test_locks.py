"""Locks under SKIFF_ROOT: what root creates there stays usable by the service account."""

import os

import pytest

from skiff.locks import file_lock, lock_path


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_root_gives_the_locks_it_creates_to_the_owner_of_skiff_root(tmp_path):
    root = tmp_path / "skiff"
    root.mkdir()
    os.chown(root, 65534, 65534)  # the service account's SKIFF_ROOT
    path = lock_path(root, "stack-bookworm")  # root runs stack:build, which takes this lock
    with file_lock(path, 1.0):
        pass
    assert os.stat(root / "locks").st_uid == 65534 and os.stat(path).st_uid == 65534
    own = tmp_path / "root-owned"
    own.mkdir()
    with file_lock(lock_path(own, "x"), 1.0):
        pass
    assert os.stat(own / "locks" / "x.lock").st_uid == 0  # a root-owned SKIFF_ROOT keeps root's files
