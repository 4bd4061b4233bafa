"""Tools for the admins who write policy: lint, test cases, explain, what-if, diff."""
