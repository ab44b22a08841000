"""MkDocs hooks (mkdocs.yml ``hooks:``): the pages in docs/ read the same on GitHub and on the site."""

from __future__ import annotations

import re

# GitHub's tables need ``\|`` for a pipe even inside a code span (`--task infer\|train`);
# Python-Markdown's tables already leave pipes inside code spans alone, and would show the
# backslash.
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def on_page_markdown(markdown: str, **_: object) -> str:
    """The page's Markdown with ``\\|`` inside a table row's code spans made a plain pipe."""
    return "\n".join(
        _CODE_SPAN.sub(lambda span: span.group(0).replace("\\|", "|"), line) if line.startswith("|") else line
        for line in markdown.split("\n")
    )
