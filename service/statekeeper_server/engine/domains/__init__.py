"""Domains: the seven managers over the Backend contract, and the helpers they share."""
