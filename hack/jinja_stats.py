#!/usr/bin/env python
"""Jinja in the collection's YAML: every {{ ... }} and {% ... %} in roles/**/*.yml and
playbooks/**/*.yml (templates/ excluded). Prints the total characters, the number of
expressions, the largest one and how many are over a limit.

    python hack/jinja_stats.py [--limit 400] [--top 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Non-greedy up to the first closing delimiter, across lines.
EXPRESSION = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def yaml_files(root: Path):
    for top in ("roles", "playbooks"):
        for path in sorted((root / top).rglob("*.yml")):
            if "templates" not in path.relative_to(root).parts:
                yield path


def expressions(root: Path):
    for path in yaml_files(root):
        text = path.read_text(encoding="utf-8")
        for match in EXPRESSION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield str(path.relative_to(root)), line, match.group(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = list(expressions(ROOT))
    sizes = sorted(((len(e), f, line) for f, line, e in found), reverse=True)
    stats = {
        "files": len(list(yaml_files(ROOT))),
        "expressions": len(found),
        "characters": sum(s for s, _f, _l in sizes),
        "largest": sizes[0][0] if sizes else 0,
        "largest_at": f"{sizes[0][1]}:{sizes[0][2]}" if sizes else "",
        "over_limit": sum(1 for s, _f, _l in sizes if s > args.limit),
        "limit": args.limit,
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return
    for key, value in stats.items():
        print(f"{key:12} {value}")
    for size, path, line in sizes[:args.top]:
        print(f"  {size:6}  {path}:{line}")


if __name__ == "__main__":
    main()
