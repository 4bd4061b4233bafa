"""The zero-trust policy decision point: identities, policies, decisions."""
