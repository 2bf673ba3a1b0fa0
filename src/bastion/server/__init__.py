"""The catalog REST API (``bastion server``): FastAPI, bearer tokens, RFC 9457 problems."""

from __future__ import annotations

from bastion.server.app import create_app

__all__ = ["create_app"]
