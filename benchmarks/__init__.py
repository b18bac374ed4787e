"""Shipped benchmark definitions (TOML), installed as the package `ticdata.definitions`."""
