"""Advantage-weighted policy gradient for rlrun: `rlrun algo=awpg`."""
