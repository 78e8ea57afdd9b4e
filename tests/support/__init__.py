"""Test helpers shared by several test modules: loopback doubles of servers the project does not own
(Kubernetes API, Flux Receiver), proxies and race harnesses."""
