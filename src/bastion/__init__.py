"""Bastion: the UK NCSC Principles for the security of machine learning, made practical.

The library mirrors the command line: ``bastion.findings`` holds the shared vocabulary,
``bastion.catalog`` the workspace, storage and audit log.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
