"""Log text on a terminal: only colour sequences pass, every other control
character is shown, not obeyed."""

from __future__ import annotations

import io

import pytest

from domain.terminal import for_terminal, use_colour

HOSTILE = {
    "OSC 0 (window title)": ("\x1b]0;pwned\x07", "␛]0;pwned␇"),
    "OSC 8 (hyperlink)": (
        "\x1b]8;;http://evil.example\x1b\\x\x1b]8;;\x1b\\",
        "␛]8;;http://evil.example␛\\x␛]8;;␛\\",
    ),
    "OSC 52 (clipboard)": ("\x1b]52;c;cm0gLXJm\x07", "␛]52;c;cm0gLXJm␇"),
    "CSI 2J (clear screen)": ("\x1b[2J", "␛[2J"),
    "cursor up": ("\x1b[5A", "␛[5A"),
    "cursor position": ("\x1b[1;1H", "␛[1;1H"),
    "DCS": ("\x1bP1$r\x1b\\", "␛P1$r␛\\"),
    "8-bit CSI": ("\x9b2J", "\\x9b2J"),
    "bare CR": ("safe\rEVIL", "safe␍EVIL"),
    "backspace and bell": ("a\x08\x07", "a␈␇"),
    "DEL": ("x\x7f", "x␡"),
    "SGR with an intermediate is not SGR": ("\x1b[1 m", "␛[1 m"),
}


@pytest.mark.parametrize("colour", [True, False])
@pytest.mark.parametrize("raw,shown", HOSTILE.values(), ids=list(HOSTILE))
def test_control_sequences_are_shown_not_obeyed(raw: str, shown: str, colour: bool) -> None:
    assert for_terminal(raw, colour) == shown


def test_nothing_but_sgr_survives() -> None:
    text = "".join(raw for raw, _ in HOSTILE.values()) + "\x1b[31mred\x1b[0m"
    out = for_terminal(text, colour=True)
    without_sgr = out.replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in without_sgr)


def test_colours_kept_when_on_and_reset_at_the_end() -> None:
    text = "\x1b[1;36mextracting\x1b[0m from \x1b[38;5;196msource"
    assert for_terminal(text, colour=True) == text + "\x1b[0m"
    assert for_terminal(text, colour=False) == "extracting from source"


def test_plain_text_newlines_and_tabs_pass_unchanged() -> None:
    text = "line one\n\tindented 步骤 ✓"
    assert for_terminal(text, colour=True) == text
    assert for_terminal(text, colour=False) == text


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour("auto", FakeTty()) is True
    assert use_colour("auto", io.StringIO()) is False
    assert use_colour("always", io.StringIO()) is True
    assert use_colour("never", FakeTty()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour("auto", FakeTty()) is False
    with pytest.raises(ValueError, match="colour must be one of"):
        use_colour("rainbow", FakeTty())
