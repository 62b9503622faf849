"""Put a benchmark's printed report into a Markdown file between its own markers.

``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` is replaced (appended when absent); the rest
of the file, including other benchmarks' blocks, is left as it is.
"""

from __future__ import annotations

from pathlib import Path


def write_block(path: Path, name: str, report: str) -> None:
    doc = path.read_text() if path.exists() else ""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{report}\n{end}"
    if start in doc and end in doc.split(start, 1)[1]:
        before, rest = doc.split(start, 1)
        doc = before + block + rest.split(end, 1)[1]
    else:
        doc = (doc.rstrip() + "\n\n" if doc else "") + block + "\n"
    path.write_text(doc)
