"""mibench: generate music-to-dance videos, score them with a Video-LLM judge and objective metrics,
and report leaderboards. See README.md for the commands and DESIGN notes in the docstrings."""

__version__ = "0.1.0"
