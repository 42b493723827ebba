"""The Docker Swarm scheduler: one swarm service per process type of a swarm app (docs/swarm.md)."""

PLUGIN = "swarm"
