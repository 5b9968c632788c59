"""Shared runtime of the Hibiki services: one way to configure, log, consume, serve and shut down."""
