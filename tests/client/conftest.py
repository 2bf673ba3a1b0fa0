"""The client tests talk to the same served catalog as the server tests."""

from tests.server.conftest import served

__all__ = ["served"]
