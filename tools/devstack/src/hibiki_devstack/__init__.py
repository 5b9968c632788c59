"""The local system without Docker: broker, PostgreSQL, supervised services, simulators, demo tenant."""
