"""Sigma rules and anomaly models that turn events into alerts, and the runner."""
