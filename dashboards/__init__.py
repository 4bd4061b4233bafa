"""The local web dashboard and the Kibana saved objects."""
