"""Put a bench run's results.md into docs/benchmarks.md (between the results markers)."""

from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"


def main(run_dir: str, target: str) -> None:
    parts = [Path(run_dir) / name for name in ("results.md", "reload.md", "tickets.md")]
    results = "\n\n".join(p.read_text().strip() for p in parts if p.exists())
    path = Path(target)
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{results}\n{END}{tail}")
    print(f"{target}: updated from {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
