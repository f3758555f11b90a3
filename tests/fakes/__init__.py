"""Fakes at the edges: stand-ins for networks and outside services, never for Airlock's own code."""
