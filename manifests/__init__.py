"""Shipped benchmark definitions (TOML), installed as the package data `ticdata.manifests`."""
