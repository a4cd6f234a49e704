"""Text for people: Markdown tables and one-line summaries of skipped files.

This module imports nothing from the rest of vfcross, so any stage may use it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub-flavoured Markdown table (``|`` in cells escaped, NA left blank)."""
    def cell(value: object) -> str:
        return "" if pd.isna(value) else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def describe_skips(skipped: pd.DataFrame, name_column: str, report: Path | str | None, limit: int = 5) -> str:
    """One line for a terminal: how many files were skipped, the first few with their reasons, and where the full list is.

    ``skipped`` has a ``reason`` column and ``name_column`` naming each file.
    """
    if skipped.empty:
        return "nothing skipped"
    shown = "; ".join(f"{name} ({reason})" for name, reason in
                      skipped[[name_column, "reason"]].head(limit).itertuples(index=False))
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    where = f"; every skipped file with its reason: {report}" if report else ""
    return f"skipped {len(skipped)} file(s): {shown}{more}{where}"
