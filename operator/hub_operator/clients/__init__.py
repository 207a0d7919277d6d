"""Thin clients of external systems, each with an in-memory fake for unit tests.

``broker_api`` is the contract of a RabbitMQ management client, ``rabbitmq`` its HTTP implementation and
``fake_rabbitmq`` the in-memory one.
"""
