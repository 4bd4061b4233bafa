"""The soc command."""
