"""Relight: real-time 3D-aware relighting of people in video.

Importing the package is cheap: heavy modules (torch models, tracking, I/O) load on first use.
"""

__version__ = "0.1.0"
