"""Async Conductor client."""
