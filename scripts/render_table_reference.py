"""Rewrite the README's table reference from segment_pipeline/storage/tables.py.

.venv/bin/python scripts/render_table_reference.py
"""

from pathlib import Path

from segment_pipeline.storage.tables import README_BEGIN, README_END, render_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    README.write_text(text[:start] + render_markdown() + text[end:])


if __name__ == "__main__":
    main()
