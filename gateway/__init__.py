"""Conductor event gateway: Kafka and AMQP events in, Conductor workflow operations out."""

__version__ = "0.1.0"
