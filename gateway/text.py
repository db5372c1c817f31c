"""Text predicates shared by every parser of user input."""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """ASCII digits only. ``str.isdigit`` also accepts ``²`` or ``٣``, which ``int()`` then
    refuses (``²``) or reads as a number nobody typed (``٣``): every port, index, size and
    count a user sends is checked with this instead."""
    return text.isascii() and text.isdigit()
