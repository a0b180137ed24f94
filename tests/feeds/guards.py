"""What the parsers of today refuse where the references (e1cbd7b's, the pre-fast-path one) raised."""
from __future__ import annotations


def quarantined_where_reference_raised(new: tuple, old: tuple, line: str, source: str) -> bool:
    """A number no Decimal holds (1e99999999999999999999) ended a reference's run with
    decimal.InvalidOperation; today's parser quarantines its line, saying so. ``new`` and ``old``:
    ("raises", name, text) or ("quarantined", source, raw, reason) outcomes."""
    if old[:2] != ("raises", "InvalidOperation"):
        return False
    assert new[:3] == ("quarantined", source, line.strip()[:4000]), line[:300]
    assert new[3].startswith("the number ") and new[3].endswith(" is out of range"), new
    return True
