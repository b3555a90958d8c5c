"""The rules in words come from one mapping (domain.rules.RULES): the decision page shows them, and the
table in docs/auditors.md must say the same, in the order the rules are tried."""

from __future__ import annotations

from pathlib import Path

from domain.rules import APPROVED, DENIED, REASONS, RULES, rules_in_order

DOC = Path(__file__).resolve().parents[2] / "docs" / "auditors.md"
START, END = "<!-- rules table: from domain.rules.RULES -->", "<!-- end of rules table -->"


def markdown_table() -> str:
    lines = ["| # | condition | outcome | reason |", "|---:|---|---|---|"]
    for number, rule in enumerate(rules_in_order(), 1):
        lines.append(f"| {number} | {rule.condition} | {rule.outcome} | `{rule.reason}` |")
    return "\n".join(lines)


def test_every_reason_has_its_rule_in_words() -> None:
    assert [rule.reason for rule in rules_in_order()] == list(REASONS)
    for reason in REASONS:
        assert RULES[reason].outcome == (APPROVED if reason == "verified" else DENIED)
        assert RULES[reason].condition.strip()


def test_the_docs_table_is_the_rules_mapping() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"docs/auditors.md lacks the rules table markers {START} … {END}"
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    expected = markdown_table()
    assert table == expected, f"regenerate the table in docs/auditors.md from domain.rules.RULES:\n{expected}"
