"""The whole-file check of a CSV file's encoding and quoting, read in chunks so memory stays flat.

Polars reads a CSV file in two steps: it splits the file into records at the line breaks outside
quotes, counting every quote (a quote inside an unquoted value included), then reads each record's
fields, where only a quote that starts a value opens a quoted one. Where the two disagree it fails
with a message naming no line, or worse, reads rows wrong without a word: a quote left open swallows
the rows up to the next quote into one value, and ``"Beta "Best" Ltd"`` loses its quotes. So the
file is checked first, strictly (RFC 4180), all of it: a quote that opens a value starts it, one
that closes a value ends it (before a comma or a line break), a quote inside a quoted value is
doubled, and a quote inside an unquoted value (``5" x 7"``) is read as written only when the line
holds an even number of them, as both steps of Polars then agree.

Each chunk is checked with NumPy: where the quotes are, which of them open a value and which close
one (they alternate while the file is well formed), and whether the byte before or after each is
one a quote may stand by. A line where one may not is checked again in Python, quote by quote (a
line with quotes inside unquoted values passes that way). A file without quotes costs a scan for
them and for its line breaks, 1.2 s of CPU per GiB; one with quotes in every row a few NumPy passes
per chunk, 3 to 6 s per GiB, in about 30 MiB (``bench/csvscan.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK_BYTES = 4 * 1024 * 1024
"""How much of a file is checked at once (cut after its last line break): what the check holds in memory."""
LONGEST_LINE_BYTES = 64 * 1024 * 1024
"""A line longer than this is no row of a book: the rest of the file is left unchecked rather than held whole."""
LONGEST_FIELD_LINES = 1000
"""A quoted field spanning more lines than this is taken for a quote left open (a note has a few dozen)."""
LONGEST_FIELD_BYTES = 1024 * 1024
"""Nor does a quoted multi-line field hold more bytes than this (a long e-mail thread in a note has a few dozen KiB)."""

_QUOTE, _COMMA, _LF, _CR = 0x22, 0x2C, 0x0A, 0x0D
_BOM = b"\xef\xbb\xbf"


def scan_csv_file(path: Path, fields: int) -> tuple[int | None, str] | None:
    """The first encoding or quoting error of CSV file ``path`` (whose header has ``fields`` fields), if any.

    Returns the data row (None for the header) and what was expected there, or None when the file
    is UTF-8 text quoted as Polars reads it right. A quoted field that runs on for more than
    :data:`LONGEST_FIELD_LINES` lines or :data:`LONGEST_FIELD_BYTES` bytes, or whose every line
    reads as a whole row of the header's width (with three fields or more), is taken for a quote
    left open: Polars would read the rows it spans as one value, and the file as valid.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "accounts.csv"
    >>> _ = path.write_text('id,name,arr\\na1,"one\\ntwo",1\\na2,"Beta "Best" Ltd",2\\n')
    >>> print(scan_csv_file(path, 3)[1])  # doctest: +NORMALIZE_WHITESPACE
    well-formed CSV quoting: a quote ends a quoted field but is followed by 'B', in the record starting on line 4
    (a quote inside a field must be doubled: "")
    >>> _ = path.write_text('id,name,arr\\na1,"Acme Screens,1\\na2,B,2\\na3,Zeta",3\\n')
    >>> scan_csv_file(path, 3)[0]
    1
    >>> _ = path.write_text('id,name,arr\\na1,5" x 7" frame,1\\na2,"one\\ntwo",2\\n')
    >>> scan_csv_file(path, 3) is None
    True
    """
    scan = _Scan(fields)
    with path.open("rb") as fh:
        pending = fh.read(len(_BOM))
        if pending == _BOM:
            pending = b""
        while True:
            block = fh.read(CHUNK_BYTES)
            data = pending + block if pending else block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > LONGEST_LINE_BYTES:
                        return None
                    pending = data
                    continue
                chunk, pending = data[:cut], data[cut:]
            else:
                chunk, pending = data, b""
            found = scan.chunk(chunk, last=not block)
            if found is not None or not block:
                return found


@dataclass
class _Span:
    """A record whose quoted field holds line breaks, as far as it is read."""

    line: int
    """The line it starts on (from 1)."""
    row: int
    """Its record: 0 for the header, then data rows from 1."""
    lines: int = 0
    size: int = 0
    rows_wide: bool = True
    """Whether every line of it so far reads as a whole row of the header's width."""


class _Scan:
    """The state of a scan between chunks: lines and records read, whether a quoted field is open."""

    def __init__(self, fields: int) -> None:
        self.fields = fields
        self.lines = 0  # line breaks before the chunk
        self.records = 0  # records ended before the chunk
        self.inside = False  # whether the chunk starts inside a quoted field
        self.span: _Span | None = None  # the record with line breaks in quotes the chunk starts inside

    def chunk(self, data: bytes, *, last: bool) -> tuple[int | None, str] | None:
        """Check one chunk (whole lines, but for the file's last) and move past it."""
        if not self.inside and b'"' not in data:
            bad_byte = _first_non_utf8(data)
            if bad_byte is not None:
                # No quotes: each line break ends a record.
                before = data.count(b"\n", 0, bad_byte)
                return self.records + before or None, not_utf8_message(data[bad_byte], self.lines + before + 1)
            breaks = data.count(b"\n")
            self.lines += breaks
            self.records += breaks
            return None
        return self._quoted_chunk(data, last=last)

    def _quoted_chunk(self, data: bytes, *, last: bool) -> tuple[int | None, str] | None:
        arr = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(arr == _QUOTE)
        breaks = np.flatnonzero(arr == _LF)
        # Every quote toggles in and out of a quoted field (a doubled one twice), as Polars splits records.
        inside_after = (np.searchsorted(quotes, breaks) + self.inside) % 2 == 1
        lines = _lines(breaks, len(data), inside_after, inside=self.inside, quotes=len(quotes))
        records_before = self.records + np.concatenate(([0], np.cumsum(~inside_after)))[: lines.count]

        errors: list[tuple[int, tuple[int | None, str]]] = []  # (line in the chunk, error): the first wins
        bad_byte = _first_non_utf8(data)
        if bad_byte is not None:
            i = int(np.searchsorted(breaks, bad_byte))
            errors.append((i, (int(records_before[i]) or None, not_utf8_message(data[bad_byte], self.lines + i + 1))))
        for i in self._suspect_lines(arr, quotes, breaks).tolist():
            # The quotes before this line are well placed, so the state at its start holds; a quote inside
            # an unquoted field (read as written) is what the test of each quote's neighbours cannot tell.
            start, end = int(lines.starts[i]), int(lines.ends[i])
            problem = _line_quoting(data[start:end], inside=bool(lines.starts_inside[i]))
            if problem is not None:
                row = int(records_before[i])
                where = _where(row, self._record_line(i, lines.starts_inside), self.lines + i + 1)
                errors.append((i, (row or None, f"well-formed CSV quoting: {problem.format(where=where)}")))
                break
        if lines.starts_inside.any() or lines.ends_inside.any():
            span_error = self._spans(arr, lines, records_before, last=last)
            if span_error is not None:
                errors.append(span_error)
        if errors:
            return min(errors, key=lambda e: e[0])[1]
        self.lines += len(breaks)
        self.records += int(np.count_nonzero(~inside_after))
        if lines.count:
            self.inside = bool(lines.ends_inside[-1])
        return None

    def _suspect_lines(self, arr: np.ndarray, quotes: np.ndarray, breaks: np.ndarray) -> np.ndarray:
        """The lines of the chunk with a quote where a well-formed file has none (to check again, in Python)."""
        if not len(quotes):
            return quotes
        # The chunk between line breaks, so that the byte before and after every quote is in it.
        padded = np.empty(len(arr) + 2, dtype=np.uint8)
        padded[0] = padded[-1] = _LF
        padded[1:-1] = arr
        # Quotes alternate: one opens a field at its start (or right after a closing quote: a doubled
        # quote), the next closes it before a comma or a line break (or is the first of a doubled quote).
        first_open = 1 if self.inside else 0
        opening, closing = quotes[first_open::2], quotes[1 - first_open :: 2]
        bad = np.concatenate(
            (opening[~_MAY_PRECEDE_OPENING[padded[opening]]], closing[~_MAY_FOLLOW_CLOSING[padded[closing + 2]]])
        )
        if not len(bad):
            return bad
        return np.unique(np.searchsorted(breaks, bad))

    def _record_line(self, i: int, starts_inside: np.ndarray) -> int:
        """The line (from 1) the record of the chunk's line ``i`` starts on."""
        outside = np.flatnonzero(~starts_inside[: i + 1])
        if len(outside):
            return self.lines + int(outside[-1]) + 1
        assert self.span is not None  # the chunk starts inside a record begun before it
        return self.span.line

    def _spans(
        self, arr: np.ndarray, lines: _Lines, records_before: np.ndarray, *, last: bool
    ) -> tuple[int, tuple[int | None, str]] | None:
        """Follow the records whose quoted fields hold line breaks; the first that is a quote left open."""
        in_span = np.flatnonzero(lines.starts_inside | lines.ends_inside)
        opens = ~lines.starts_inside & lines.ends_inside
        closes = lines.starts_inside & ~lines.ends_inside
        # Spans numbered in the chunk from 1; the lines of one begun before the chunk are span 0.
        ids = np.cumsum(opens)[in_span]
        n_ids = int(ids[-1]) + 1
        commas = np.flatnonzero(arr == _COMMA)
        starts, ends = lines.starts[in_span], lines.ends[in_span]
        # Every comma of a line counts (quotes aside): a row swallowed into a quoted field has the header's width.
        narrow = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) != self.fields - 1
        n_lines = np.bincount(ids, minlength=n_ids)
        sizes = np.bincount(ids, weights=ends - starts + 1, minlength=n_ids).astype(np.int64)
        n_narrow = np.bincount(ids, weights=narrow, minlength=n_ids)
        first = np.concatenate(([0], np.flatnonzero(opens)))  # each span's first line in the chunk
        closed = np.zeros(n_ids, dtype=bool)
        closed[np.cumsum(opens)[closes]] = True
        carried = self.span
        if carried is not None:
            n_lines[0] += carried.lines
            sizes[0] += carried.size
            n_narrow[0] += 0 if carried.rows_wide else 1
        too_long = (n_lines > LONGEST_FIELD_LINES) | (sizes > LONGEST_FIELD_BYTES)
        swallowed = closed & (n_narrow == 0) & (self.fields >= 3)
        open_at_end = np.zeros(n_ids, dtype=bool)
        open_at_end[-1] = last and not closed[-1]
        failed = np.flatnonzero(too_long | swallowed | open_at_end)

        def span_of(k: int) -> _Span:
            line = carried.line if k == 0 and carried is not None else self.lines + int(first[k]) + 1
            row = carried.row if k == 0 and carried is not None else int(records_before[first[k]])
            return _Span(line, row, int(n_lines[k]), int(sizes[k]), not n_narrow[k])

        if len(failed):
            k = int(failed[0])
            span = span_of(k)
            if too_long[k]:
                message = _unclosed(span.lines, span.row, span.line)
            elif swallowed[k]:
                message = _swallowed_rows(span, self.fields)
            else:
                message = _runs_to_the_end(span)
            return int(first[k]), (span.row or None, message)
        self.span = None if closed[-1] else span_of(n_ids - 1)
        return None


_MAY_PRECEDE_OPENING = np.zeros(256, dtype=bool)
_MAY_PRECEDE_OPENING[[_COMMA, _LF, _QUOTE]] = True
_MAY_FOLLOW_CLOSING = np.zeros(256, dtype=bool)
_MAY_FOLLOW_CLOSING[[_COMMA, _LF, _CR, _QUOTE]] = True


@dataclass(frozen=True)
class _Lines:
    """The lines of a chunk: where each starts and ends (before its line break), and whether in a quoted field."""

    starts: np.ndarray
    ends: np.ndarray
    starts_inside: np.ndarray
    ends_inside: np.ndarray

    @property
    def count(self) -> int:
        return len(self.ends)


def _lines(breaks: np.ndarray, size: int, inside_after: np.ndarray, *, inside: bool, quotes: int) -> _Lines:
    """The lines of a chunk of ``size`` bytes, given its line breaks and whether each is inside a quoted field."""
    ends = breaks if size and breaks[-1:].tolist() == [size - 1] else np.append(breaks, size)
    count = len(ends)
    return _Lines(
        starts=np.concatenate(([0], breaks + 1))[:count],
        ends=ends,
        starts_inside=np.concatenate(([inside], inside_after))[:count],
        ends_inside=np.append(inside_after, (quotes + inside) % 2 == 1)[:count],
    )


@dataclass(frozen=True)
class _LineProblem:
    """What is wrong with a line's quotes: ``what``, and the advice after where it is."""

    what: str
    advice: str

    def format(self, *, where: str) -> str:
        return f"{self.what}{where} {self.advice}"


def _line_quoting(line: bytes, *, inside: bool) -> _LineProblem | None:
    """The quoting error of one line read as Python's strict CSV reader does, starting ``inside`` a quoted field or not.

    A quote inside an unquoted field is read as written; an odd number of them on a line is an
    error, as Polars then splits the file into records at the wrong line breaks.

    Examples
    --------
    >>> _line_quoting(b'a1,5" x 7" frame,"ok"', inside=False) is None
    True
    >>> _line_quoting(b'a1,Acme 5" Screens,1', inside=False).what
    'a quote inside an unquoted field (\\'Acme 5" Screens\\')'
    >>> _line_quoting(b'still inside",2', inside=True) is None
    True
    """
    i, n = 0, len(line)
    literal = 0
    first_literal = b""
    while True:
        if inside:
            j = line.find(b'"', i)
            if j < 0:
                break
            if line[j + 1 : j + 2] == b'"':
                i = j + 2
                continue
            inside = False
            i = j + 1
            if i == n or line[i : i + 1] == b"," or line[i:] == b"\r":
                i += 1
                if i > n:
                    break
                continue
            shown = line[i : i + 1].decode("utf-8", "replace")
            return _LineProblem(
                f"a quote ends a quoted field but is followed by {shown!r}",
                '(a quote inside a field must be doubled: "")',
            )
        if line[i : i + 1] == b'"':
            inside = True
            i += 1
            continue
        comma = line.find(b",", i)
        end = n if comma < 0 else comma
        count = line.count(b'"', i, end)
        if count and not first_literal:
            first_literal = line[i:end].rstrip(b"\r")
        literal += count
        if comma < 0:
            break
        i = comma + 1
    if literal % 2:
        shown = first_literal.decode("utf-8", "replace")
        fixed = '"' + shown.replace('"', '""') + '"'
        return _LineProblem(
            f"a quote inside an unquoted field ({shown!r})",
            f"(quote the field and double the quote: {fixed})",
        )
    return None


def _where(row: int, record_line: int, line: int) -> str:
    """Where a quoting error is: the line its record (a data row) starts on, and its own line when that differs."""
    if not row:
        return f", on line {line}"
    if record_line == line:
        return on_line(row, line)
    return f", on line {line}, in the record starting on line {record_line}"


def on_line(row: int, line: int) -> str:
    """Where a data record starts in the file: multi-line fields before it make its line differ from its row."""
    return f", in the record starting on line {line}" if row else ""


def _unclosed(lines: int, row: int, start: int) -> str:
    """What to say of a quoted field that runs on for too long to be a value."""
    return (
        f"every quote closed; a quoted field runs on over {lines:,} lines{on_line(row, start)}, so a quote "
        'there is probably not closed (a quote inside a field must be doubled: "")'
    )


def _swallowed_rows(span: _Span, fields: int) -> str:
    return (
        f"every quote closed; a quoted field runs on over {span.lines:,} lines{on_line(span.row, span.line)}, "
        f"each of which reads as a whole row of the header's {fields} fields, so a quote there is probably "
        "not closed and the rows after it would be read into one value (close it; a quote inside a field "
        'must be doubled: "")'
    )


def _runs_to_the_end(span: _Span) -> str:
    where = f" in the record starting on line {span.line}" if span.row else " in the header"
    return (
        f"every quote closed; a quoted field{where} runs on to the end of the file, "
        'so a quote there is not closed (a quote inside a field must be doubled: "")'
    )


def _first_non_utf8(data: bytes) -> int | None:
    """The offset of the first byte of ``data`` that is not UTF-8, if any (chunks are cut at line breaks)."""
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def not_utf8_message(byte: int, line: int) -> str:
    what = f"byte 0x{byte:02x} on line {line} is not UTF-8"
    return f"UTF-8 text; {what} (Latin-1 or Windows-1252?): save the file as UTF-8"
