"""Routing rules: YAML schema, content patterns, ${...} templates, the router."""
