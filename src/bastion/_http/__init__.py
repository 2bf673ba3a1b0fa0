"""HTTP pieces shared by the fronts that serve requests (the catalog ``server``, and the
inference ``gateway``): errors as RFC 9457 problem details (``problems``)."""
