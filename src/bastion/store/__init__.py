"""What every service stands on: the workspace, its database and migrations, keys, API tokens,
the audit log and the encrypted blob store (DESIGN "Layout and layers").

Services (``catalog``, ``deps``, and later ``gateway``, ``lifecycle``…) open a
:class:`~bastion.store.workspace.Workspace` and use its parts; nothing here imports a service::

    ws = Workspace.find()                       # settings, engine, signing key, audit log
    ws.record("note", "demo", reason="example")   # one audited entry as the current actor

Modules: ``workspace`` (open / init), ``db`` (engines, migrations, write transactions),
``schema`` (tables; changed only by a migration), ``keys`` (signing key, KEK, data keys),
``blobs`` (the :class:`~bastion.store.blobs.BlobStore` protocol and the local store),
``audit`` (hash chain, signed checkpoints), ``tokens`` (API tokens), ``roles``.
"""
