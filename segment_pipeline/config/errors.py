"""Configuration problems, collected and reported together before anything is written."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One breach: where it is (file, line, item) and which rule it breaks."""

    file: str
    item: str | None
    rule: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where] + ([self.item] if self.item else []) + [self.rule, self.message]
        return ": ".join(parts)


class ConfigError(ValueError):
    """Every problem found in one or more config files, listed in file and line order."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        count = len(self.problems)
        header = f"{count} configuration problem{'s' if count != 1 else ''}; nothing was run or written:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))
