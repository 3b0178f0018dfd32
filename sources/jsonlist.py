"""Stream the elements of a JSON list file with memory bounded by one element, never by the file.

ProgressGym writes its year files as `[`, one object per line joined by `,\\n`, then `\\n]` (`JsonListWriter` in
PKU-Alignment/ProgressGym src/utils/text_utils.py); files reach gigabytes. The fast path reads such a line with
one `json.loads`. Any other layout (indented, several elements per line, one element over many lines) goes through
a small structural scanner that finds where each element ends. A broken element does not stop the file: it is
reported with a reason, and reading resumes at the next line that opens an element at (or left of) the broken
element's indentation. Element problems: `malformed_json`, `invalid_utf8`, `too_large`; file problems (index None):
`empty_file`, `not_a_list`, `truncated_file`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# a JSON string (closed or running to the end of the line, which no valid string does) or a bracket
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


@dataclass(slots=True)
class JsonListItem:
    """One element (index >= 0) or one file-level problem (index None) of a JSON list file."""

    line: int  # 1-based line where the element (or problem) starts
    index: int | None
    value: object = None
    reason: str | None = None  # None: `value` is the decoded element
    detail: str = ""
    text: str = ""  # the element's text, for a reject's snippet


@dataclass(slots=True)
class _Element:
    line: int
    column: int
    parts: list[str]
    chars: int = 0
    reason: str | None = None
    detail: str = ""


class _ListScanner:
    """State of one file's scan: top-level depth, the element being collected, counters."""

    def __init__(self, max_element_chars: int):
        self.max_element_chars = max_element_chars
        self.opened = False  # saw the top-level `[`
        self.closed = False  # saw the matching `]`
        self.depth = 0  # bracket depth, 1 = inside the top-level list
        self.element: _Element | None = None
        self.skipping: _Element | None = None  # a too-large element: dropped until resync, never buffered
        self.index = 0
        self.failed = False  # a file-level problem ended the scan

    def item(
        self, element: _Element, value: object = None, reason: str | None = None, detail: str = ""
    ) -> JsonListItem:
        text = "\n".join(element.parts)
        item = JsonListItem(element.line, self.index, value, reason or element.reason, detail or element.detail, text)
        self.index += 1
        return item

    def finish_element(self, element: _Element) -> JsonListItem:
        if element.reason:
            return self.item(element)
        text = "\n".join(element.parts)
        try:
            return self.item(element, value=json.loads(text))
        except json.JSONDecodeError as error:
            return self.item(element, reason="malformed_json", detail=f"{error.msg} at char {error.pos}")

    def resync(self, line: str, line_no: int) -> JsonListItem | None:
        """A line opening an element at or left of the open (broken) element's column ends that element."""
        open_element = self.element or self.skipping
        if open_element is None:
            return None
        stripped = line.lstrip()
        column = len(line) - len(stripped)
        if not stripped or stripped[0] not in "{]" or column > open_element.column:
            return None
        self.element = None
        self.depth = 1
        if self.skipping is not None:
            self.skipping = None
            return None  # its too_large item was already given
        if not open_element.reason:
            open_element.reason = "malformed_json"
            open_element.detail = f"element starting on line {open_element.line} never closes before line {line_no}"
        return self.item(open_element)

    def scalars(self, gap: str, line_no: int) -> Iterator[JsonListItem]:
        """Text between elements at depth 1: separators, or scalar elements (which are not objects)."""
        for piece in gap.split(","):
            piece = piece.strip()
            if piece:
                yield self.finish_element(_Element(line_no, 0, [piece]))

    def scan(self, line: str, line_no: int, bad_utf8: str | None) -> Iterator[JsonListItem]:
        """Feed one line (without its newline)."""
        if (resynced := self.resync(line, line_no)) is not None:
            yield resynced
        if self.skipping is not None:
            return
        if self.element is not None:
            self.element.parts.append("")
            if bad_utf8 and not self.element.reason:
                self.element.reason, self.element.detail = "invalid_utf8", bad_utf8
        position = 0
        for match in _TOKEN.finditer(line):
            token = match.group()
            start = match.start()
            if not self.opened:
                if line[position:start].strip() or token != "[":
                    yield self.not_a_list(line_no, line)
                    return
                self.opened, self.depth, position = True, 1, match.end()
                continue
            if self.closed:
                break
            if self.depth == 1:
                yield from self.scalars(line[position:start], line_no)
                if token == "]":
                    self.closed, self.depth, position = True, 0, match.end()
                    continue
                if token[0] == '"':  # a string element
                    reason = self.unterminated(token)
                    detail = f"unterminated string on line {line_no}" if reason else ""
                    yield self.finish_element(_Element(line_no, start, [token], reason=reason, detail=detail))
                    position = match.end()
                    continue
                if token == "}":
                    yield self.item(_Element(line_no, start, [token], reason="malformed_json", detail="stray }"))
                    position = match.end()
                    continue
                self.element = _Element(line_no, start, [""])
                if bad_utf8:
                    self.element.reason, self.element.detail = "invalid_utf8", bad_utf8
                position = start
            if token[0] == '"':
                if self.unterminated(token) and self.element is not None and not self.element.reason:
                    self.element.reason, self.element.detail = (
                        "malformed_json",
                        f"unterminated string on line {line_no}",
                    )
                continue
            self.depth += 1 if token in "[{" else -1
            if self.depth == 1 and self.element is not None:
                self.element.parts[-1] += line[position : match.end()]
                element, self.element = self.element, None
                position = match.end()
                yield self.finish_element(element)
        rest = line[position:]
        if not self.opened:
            if rest.strip():
                yield self.not_a_list(line_no, line)
            return
        if self.closed:
            if rest.strip():
                self.failed = True
                yield JsonListItem(line_no, None, None, "malformed_json", "text after the closing ]", rest)
            return
        if self.element is not None:
            self.element.parts[-1] += rest
            self.element.chars += len(rest) + 1
            if self.element.chars > self.max_element_chars:
                yield self.too_large(self.element.chars)
            elif self.element.reason and line.rstrip().endswith(("}", "},")):
                # broken (an unterminated string) on a line that ends like a writer-layout element: it ends here
                element, self.element, self.depth = self.element, None, 1
                yield self.item(element)
        elif self.depth == 1:
            yield from self.scalars(rest, line_no)

    def unterminated(self, token: str) -> str | None:
        inner = token[1:-1]
        closed = len(token) >= 2 and token.endswith('"') and (len(inner) - len(inner.rstrip("\\"))) % 2 == 0
        return None if closed else "malformed_json"

    def too_large(self, chars: int) -> JsonListItem:
        element = self.element
        assert element is not None
        self.element, self.skipping = None, element
        item = self.item(
            element,
            reason="too_large",
            detail=f"element of > {chars} chars > max_element_chars {self.max_element_chars}",
        )
        item.text = item.text[:400]
        return item

    def not_a_list(self, line_no: int, line: str) -> JsonListItem:
        self.failed = True
        return JsonListItem(line_no, None, None, "not_a_list", "the file is not a JSON list ([ ... ])", line[:400])


def iter_json_list(handle: BinaryIO, max_element_chars: int = 5_000_000) -> Iterator[JsonListItem]:
    """Every element of the JSON list in `handle`, in order, each decoded or carrying a reason."""
    scanner = _ListScanner(max_element_chars)
    limit_bytes = max_element_chars * 4 + 2  # UTF-8 is at most 4 bytes a character, plus \r\n
    line_no = 0
    saw_text = False
    while not scanner.failed:
        chunk = handle.readline(limit_bytes)
        if not chunk:
            break
        line_no += 1
        if len(chunk) == limit_bytes and not chunk.endswith(b"\n"):
            yield from _over_long_line(scanner, handle, chunk, line_no)
            continue
        try:
            line, bad_utf8 = chunk.decode("utf-8"), None
        except UnicodeDecodeError as error:
            line, bad_utf8 = (
                chunk.decode("utf-8", errors="replace"),
                f"line {line_no} byte {error.start}: {error.reason}",
            )
        line = line.rstrip("\r\n")
        saw_text = saw_text or bool(line.strip())
        if bad_utf8 is None and (item := _fast_element(scanner, line, line_no)) is not None:
            yield item
            continue
        yield from scanner.scan(line, line_no, bad_utf8)
    if scanner.failed:
        return
    if not saw_text:
        yield JsonListItem(1, None, None, "empty_file", "no JSON in the file")
        return
    open_element = scanner.element
    if open_element is not None:
        if not open_element.reason:
            open_element.reason, open_element.detail = "malformed_json", "the file ends inside this element"
        yield scanner.item(open_element)
    if not scanner.closed:
        yield JsonListItem(line_no, None, None, "truncated_file", "the list is never closed with ]")


def _fast_element(scanner: _ListScanner, line: str, line_no: int) -> JsonListItem | None:
    """ProgressGym's layout: a whole object on its own line, maybe followed by a comma: one json.loads."""
    if scanner.depth != 1 or scanner.element is not None or scanner.skipping is not None or scanner.closed:
        return None
    body = line.strip()
    if body.endswith(","):
        body = body[:-1].rstrip()
    if not (body.startswith("{") and body.endswith("}")):
        return None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None  # several elements on the line, or a broken one: the scanner decides
    return scanner.item(_Element(line_no, len(line) - len(line.lstrip()), [body]), value=value)


def _over_long_line(scanner: _ListScanner, handle: BinaryIO, chunk: bytes, line_no: int) -> Iterator[JsonListItem]:
    """A line longer than any element may be: its element is too_large; skip the line without holding it."""
    skipped = len(chunk) + skip_to_newline(handle)
    detail = f"line {line_no} of {skipped} bytes > max_element_chars {scanner.max_element_chars}"
    snippet = chunk[:400].decode("utf-8", errors="replace")
    if scanner.skipping is not None:
        return
    if scanner.element is not None:
        item = scanner.too_large(scanner.element.chars + skipped)
        item.detail = detail
        yield item
        return
    if scanner.depth != 1:  # the list itself sits on this line
        scanner.failed = True
        yield JsonListItem(line_no, None, None, "too_large", f"{detail}; the list is on one line", snippet)
        return
    start = len(snippet) - len(snippet.lstrip())
    scanner.element = _Element(line_no, start, [snippet])
    item = scanner.too_large(skipped)
    item.detail = detail
    yield item


def skip_to_newline(handle: BinaryIO, chunk_bytes: int = 1 << 20) -> int:
    """Advance past the rest of an over-long line without holding it; return the bytes skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(chunk_bytes)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def write_json_list(handle, elements) -> int:
    """ProgressGym's `JsonListWriter` layout: `[`, elements joined by `,\\n` (one per line), `\\n]`."""
    handle.write("[")
    count = 0
    for element in elements:
        handle.write("\n" if count == 0 else ",\n")
        handle.write(json.dumps(element))
        count += 1
    handle.write("\n]")
    return count
