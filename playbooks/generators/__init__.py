"""Generators of realistic artefacts (captures, syslog, Windows events, service calls).

They write the same files the province's sensors would produce, so the demo and the
exercises go through the real collectors instead of inserting events directly.
"""
