"""Exercises for trainees and response playbooks for analysts."""
