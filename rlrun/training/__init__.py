"""Stateful training helpers: target-network sync and exploration noise processes."""
