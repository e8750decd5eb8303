from __future__ import annotations

import pytest

from runners.registry import Registry


def test_entries_keep_their_order_and_an_unknown_name_lists_the_known_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("b", 2)

    @reg.register("a")
    def one() -> int:
        return 1

    assert reg.names() == ["b", "a"] and "a" in reg and len(reg) == 2 and reg.get("a") is one
    with pytest.raises(ValueError, match=r"unknown widget 'c'; one of \['b', 'a'\]"):
        reg.get("c")


def test_a_name_registers_once() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="widget 'x' is already registered"):
        reg.add("x", 2)
