"""The collectors package of ztsoc; see ARCHITECTURE.md for what it owns."""
