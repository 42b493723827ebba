"""Unit tests of the cluster plugin: addresses are checked with full matches before any engine is asked."""

from __future__ import annotations

import socket

import pytest

import skiff_cluster.plugin as cluster_plugin
from skiff.errors import SkiffError, ValidationError
from skiff_cluster.commands import _engine, advertise_address, engine_address


def test_engine_and_advertise_addresses_are_full_matches():
    assert engine_address("unix:///run/skiff/n2.sock") == "unix:///run/skiff/n2.sock"
    assert engine_address("tcp://node2.example:2376") == "tcp://node2.example:2376"
    for bad in ("unix:///a/../etc/x", "http://x:1", "tcp://x", "unix:///a b", "tcp://x:1\n"):
        with pytest.raises(ValidationError):
            engine_address(bad)
    assert advertise_address("10.216.3.11") == "10.216.3.11"
    for bad in ("127.0.0.1", "0.0.0.0", "node1", "10.0.0.1; rm"):
        with pytest.raises(ValidationError):
            advertise_address(bad)


def test_every_cluster_command_is_root_only_and_refused_over_ssh(skiff):
    h = skiff(("cluster", cluster_plugin))
    for command in ("cluster:init 10.0.0.1", "cluster:add unix:///x.sock", "cluster:remove n", "cluster:list"):
        result = h.ssh(command)
        assert result.exit_code != 0, command
        assert "not available over SSH" in result.stderr


def test_an_engine_nothing_listens_at_is_one_short_line_with_the_systems_reason():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        with pytest.raises(SkiffError) as caught:
            _engine(address, "node")
    assert str(caught.value) == f"cannot reach the node engine at {address}: Connection refused"
