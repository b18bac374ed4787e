"""Shipped run configs (`tic train --preset NAME`): the TiC-CLIP paper's scales, as TOML files."""
