"""The catalog REST API (``bastion server``): FastAPI, bearer tokens, RFC 9457 problems.

``bastion.server.app.create_app(workspace)`` builds the ASGI app; ``bastion.client.remote``
talks to it. Nothing is imported here, so the CLI's client does not pay for FastAPI.
"""
