"""Clients of Bastion's services: :class:`~bastion.client.remote.RemoteCatalog` is the catalog
behind a ``bastion server``, with the same :class:`~bastion.catalog.api.CatalogAPI` as the local
one. Nothing is imported here, so a command that stays local never loads httpx."""
