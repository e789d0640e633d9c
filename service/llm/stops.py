"""Stop sequences applied by ragtune, so that none can end an answer before its first word.

A server cuts at the first occurrence of a stop anywhere in the output, so a model that begins
its answer with a blank line ("\n\nThe application must run ...") under the stop "\n\n" returns
an empty answer. Both backends generate without the server's stops and scan the text here: a
stop counts only once it starts after the answer's first non-blank character. Text that could
still turn into a stop is held back until it cannot, so nothing after a stop is ever sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


class StopScanner:
    """Feed generated pieces; get back what is safe to send, and whether a stop was reached."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in dict.fromkeys(stops) if s]
        self._text = ""  # everything generated so far
        self._sent = 0  # how much of it has been handed out
        self._begin: int | None = None  # index of the first non-blank character
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The part of the output that can be sent now (empty while it may be a stop's start)."""
        if self.stopped:
            return ""
        self._text += piece
        if self._begin is None:
            stripped = len(self._text) - len(self._text.lstrip())
            if stripped < len(self._text):
                self._begin = stripped
        if self._begin is None:  # blanks only so far: a stop here would end an empty answer
            return self._take(len(self._text) - self._held())
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._take(cut)
        return self._take(len(self._text) - self._held())

    def flush(self) -> str:
        """What is left once generation ends without a stop."""
        return "" if self.stopped else self._take(len(self._text))

    def _first_stop(self) -> int | None:
        """Where the first stop starts; text already sent never holds one (it was held back)."""
        assert self._begin is not None
        start = max(self._begin + 1, self._sent)
        found = [i for s in self._stops if (i := self._text.find(s, start)) >= 0]
        return min(found) if found else None

    def _held(self) -> int:
        """Length of the longest tail that is the beginning of some stop sequence."""
        tail = self._text[self._sent :]
        for n in range(min(len(tail), max((len(s) for s in self._stops), default=0)), 0, -1):
            if any(s.startswith(tail[-n:]) for s in self._stops):
                return n
        return 0

    def _take(self, upto: int) -> str:
        out = self._text[self._sent : upto] if upto > self._sent else ""
        self._sent = max(self._sent, upto)
        return out


_WORD = re.compile(r"\S+")


class LoopGuard:
    """Ends an answer that has started repeating itself, without touching how it is sampled.

    Small models fall into loops ("The API for the API for the API for the ..."; one sentence ten
    times). A repeat penalty changes every answer to prevent that; this looks only at the text:
    when the last ``times`` runs of the same 2-40 words follow each other (a single word: ``times``
    + 1), the answer ends before the last of them. Answers that never loop are left as they were.
    """

    def __init__(self, times: int = 3, longest: int = 40) -> None:
        self._times, self._longest = times, longest
        self._text = ""
        self._starts: list[int] = []  # where each complete word starts in the text
        self._words: list[str] = []  # the complete words, lower-cased
        self.looped = False

    def feed(self, piece: str) -> str:
        """The part of ``piece`` to keep: all of it, or what comes before a loop's last repeat."""
        if self.looped:
            return ""
        base = len(self._text)
        self._text += piece
        tail = self._starts[-1] if self._starts else 0
        # words that are complete (followed by white space) and not seen yet
        for m in _WORD.finditer(self._text, tail):
            if m.end() == len(self._text):
                break  # maybe still growing
            if not self._starts or m.start() > self._starts[-1]:
                self._starts.append(m.start())
                self._words.append(m.group().lower())
                cut = self._loop_start()
                if cut is not None:
                    self.looped = True
                    return piece[: max(0, cut - base)]
        return piece

    def _loop_start(self) -> int | None:
        """Where the last repeat of a loop ending at the newest word starts, if there is one.

        Runs once per generated word, so each unit size is rejected on one comparison unless
        the newest word also stands one unit back.
        """
        words, n = self._words, len(self._words)
        for size in range(1, min(self._longest, n // self._times) + 1):
            times = self._times + (size == 1)
            if size * times > n:
                break
            if words[-1] != words[-1 - size]:
                continue
            unit = words[n - size :]
            if all(words[n - k * size : n - (k - 1) * size] == unit for k in range(2, times + 1)):
                return self._starts[n - size]  # where the last repeat starts
        return None


class AnswerText:
    """The generated text as the client gets it: stops applied (after the first word), loops cut.

    Both backends feed every raw piece through one of these and end generation once ``ended``.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = StopScanner(stops)
        self._loops = LoopGuard()

    @property
    def ended(self) -> bool:
        return self._stops.stopped or self._loops.looped

    def feed(self, raw: str) -> str:
        text = self._stops.feed(raw)
        return self._loops.feed(text) if text else ""

    def flush(self) -> str:
        return self._loops.feed(self._stops.flush()) if not self._loops.looped else ""
