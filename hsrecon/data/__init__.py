"""Datasets: where the (RGB, cube) pairs of the NTIRE spectral reconstruction layouts are.

``discover(root, split, track)`` returns :class:`Pair` paths; the readers in :mod:`hsrecon.io` load them.
"""

from __future__ import annotations

from hsrecon.data.ntire import SPLITS, TRACKS, Pair, Scan, discover, pairing_key, scan, track_space

__all__ = ["SPLITS", "TRACKS", "Pair", "Scan", "discover", "pairing_key", "scan", "track_space"]
