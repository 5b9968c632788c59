"""Local infrastructure without Docker: broker, PostgreSQL and supervised service processes."""
