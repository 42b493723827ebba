"""Skiff contrib plugin: a Docker Swarm of engines, formed over their API (cluster:*)."""

PLUGIN = "cluster"
