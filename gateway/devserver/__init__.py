"""A Conductor-compatible dev server, and launchers for local brokers (`gateway dev`)."""
