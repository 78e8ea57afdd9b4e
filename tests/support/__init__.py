"""Loopback doubles of servers the project does not own (Kubernetes API, Flux Receiver)."""
