"""Pure builders: specifications in, desired state out (no I/O).

``broker_definitions`` is the normalised, comparable form of RabbitMQ definitions, ``broker`` turns vhost and
client specifications into desired definitions, ``broker_diff`` compares desired with actual.
"""
