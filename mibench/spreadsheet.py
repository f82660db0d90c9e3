"""CSV cells made safe for spreadsheets: a text cell that a spreadsheet would run as a formula (starting
with =, +, -, @, tab or carriage return) gets a leading quote, so it is shown as text (OWASP CSV injection).
Model names and prompts are free text, so every CSV mibench writes passes its cells through `inert`."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """`value`, with a quote in front when it is text a spreadsheet would run as a formula."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
