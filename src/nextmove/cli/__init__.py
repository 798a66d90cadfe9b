"""The command line: ``nextmove init``, ``validate``, ``simulate``, ``features`` …"""

from nextmove.cli.app import app, main

__all__ = ["app", "main"]
