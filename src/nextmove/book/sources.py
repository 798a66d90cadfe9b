"""Where a book's tables come from: a folder of CSV/Parquet files, or frames in memory (a database: :mod:`.database`).

Each source gives the raw table lazily (text columns for CSV, native types otherwise), after
file-level checks that catch binary garbage, wrong encodings and wrong delimiters early.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from nextmove.book.contract import CONTRACT, FILE_SUFFIXES
from nextmove.book.csvscan import not_utf8_message, on_line, scan_csv_file
from nextmove.book.problems import Problem, Rule
from nextmove.errors import BookError

if TYPE_CHECKING:
    import pyarrow as pa

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class TableSource:
    """One table of a book and how to read it raw."""

    table: str
    label: str
    """Shown to users in problems: a file path, or ``table NAME in URL``."""
    kind: str
    """``csv``, ``parquet`` or ``frame``."""
    scan: Callable[[], pl.LazyFrame]
    """Returns the raw table lazily, without a row index."""
    path: Path | None = None
    stamp: FileStamp | None = None
    """What the file was when it was found, before any read (:func:`file_stamp`); None for frames."""


@dataclass(frozen=True)
class FileStamp:
    """What a file is: which file (device and inode), its size and times, and a digest of its bytes.

    A book's files are read several times (validation's passes, then loading): equal stamps taken
    before the first read and after the last mean every read saw the same bytes. A file replaced
    by another (an export moved into place) is another inode; one written in place changes its
    size or its times (``ctime`` cannot be set back, as ``mtime`` can); the digest catches a rewrite
    of the same size on a file system whose times are too coarse to tell.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    digest: str


def file_stamp(path: Path) -> FileStamp | None:
    """The stamp of the file at ``path`` now; None if it cannot be opened (gone, or no permission).

    The digest (SHA-256, hardware-accelerated) reads the whole file once: 0.25 s of CPU for the
    300 MiB of a book of 100,000 accounts and 5M signal rows, which validation reads in 17 s of CPU;
    taken before the first read and after the last, 3 % of it (``bench/validate.py``).
    """
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None
    return FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)


@dataclass(frozen=True)
class DiscoveredBook:
    """The tables found in a source, and the file-level problems met finding them."""

    source: str
    tables: dict[str, TableSource]
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)
    """Files (or a database's tables and views) met that are not read though named after a table (``signals.csv.gz``,
    ``outcomes (1).csv``, ``signals_2024``)."""

    def changed(self) -> list[TableSource]:
        """The tables whose file is no longer what it was when found (replaced, written to, or removed).

        Whatever was read of them may mix two versions of the file, or be another file than the
        one validated: see :class:`FileStamp`.
        """
        return [
            src
            for src in self.tables.values()
            if src.path is not None and src.stamp is not None and file_stamp(src.path) != src.stamp
        ]


def changed_message(src: TableSource) -> str:
    """What to say of a file that changed while it was read."""
    return f"{src.label} changed while it was read; run again when the export has finished"


def discover_folder(folder: Path) -> DiscoveredBook:
    """Find the contract tables in ``folder`` (``accounts.csv`` or ``accounts.parquet``, …).

    File names are matched without regard to case (``Accounts.CSV`` is the accounts table), as
    exports from other systems name them; two files for one table are a problem naming both. A file
    whose name starts with a table's but is not read (``signals.csv.gz``, ``signals.tsv``,
    ``outcomes (1).csv``) is noted, with what to do: a missing optional table is read as empty, and
    would be so without a word. For the required ``accounts``, the problem of the missing table names it.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "accounts.csv").write_text("account_id\\na1\\n")
    >>> _ = (folder / "signals.csv.gz").write_bytes(b"")
    >>> print(discover_folder(folder).notes[0].replace(str(folder), "book"))  # doctest: +NORMALIZE_WHITESPACE
    book/signals.csv.gz is not read, so the signals table is empty: nextmove reads signals.csv or
    signals.parquet; it is compressed: decompress it to signals.csv
    """
    if not folder.exists():
        raise BookError(f"{folder}: no such folder; pass the folder that holds accounts.csv")
    if not folder.is_dir():
        raise BookError(f"{folder}: not a folder; pass the folder that holds accounts.csv")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    tables: dict[str, TableSource] = {}
    problems: list[Problem] = []
    notes: list[str] = []
    for name, spec in CONTRACT.items():
        wanted = {f"{name}{suffix}" for suffix in FILE_SUFFIXES}
        found = [p for p in files if p.name.lower() in wanted]
        unread = [p for p in files if p.name.lower().startswith(name) and p not in found]
        if len(found) > 1:
            problems.append(
                Problem(
                    Rule.AMBIGUOUS_TABLE,
                    name,
                    str(folder),
                    f"one file for table {name!r}; found {' and '.join(p.name for p in found)}: remove one",
                )
            )
            continue
        if not found:
            if spec.required:
                also = "".join(f"; found {p.name}, which is not read: {_unread_advice(p, name)}" for p in unread)
                problems.append(
                    Problem(
                        Rule.MISSING_TABLE,
                        name,
                        str(folder / f"{name}.csv"),
                        f"a file {name}.csv or {name}.parquet (the {name} table is required){also}",
                    )
                )
            else:
                notes += [
                    f"{p} is not read, so the {name} table is empty: nextmove reads {name}.csv or "
                    f"{name}.parquet; {_unread_advice(p, name)}"
                    for p in unread
                ]
            continue
        path = found[0]
        notes += [f"{p} is not read: the {name} table is read from {path.name}" for p in unread]
        stamp = file_stamp(path)  # before any read: every later read is compared with it
        problem = check_csv_file(path, name) if _is_csv(path) else check_parquet_file(path, name)
        if problem is not None:
            problems.append(problem)
            continue
        tables[name] = _file_source(name, path, stamp)
    return DiscoveredBook(str(folder), tables, problems, notes)


_COMPRESSED = (".gz", ".zip", ".bz2", ".xz", ".zst", ".7z")
_SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def _unread_advice(path: Path, table: str) -> str:
    """What to do with a file named after ``table`` that is not read, so that it is."""
    name = path.name.lower()
    if name.endswith(_COMPRESSED):
        return f"it is compressed: decompress it to {table}.csv"
    if name.endswith(_SPREADSHEETS):
        return f"it is a spreadsheet: export it as CSV UTF-8, named {table}.csv"
    if name.endswith((".tsv", ".tab")):
        return f"save it as comma-separated CSV, named {table}.csv"
    if name.endswith(".txt"):
        return f"if it is comma-separated CSV, rename it to {table}.csv"
    for suffix in FILE_SUFFIXES:
        if name.endswith(suffix):
            return f"rename it to {table}{suffix}"
    return f"save it as CSV UTF-8, named {table}.csv"


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _file_source(name: str, path: Path, stamp: FileStamp | None) -> TableSource:
    if _is_csv(path):
        return TableSource(
            name,
            str(path),
            "csv",
            lambda: pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=False),
            path,
            stamp,
        )
    return TableSource(name, str(path), "parquet", lambda: scan_parquet_file(path), path, stamp)


def scan_parquet_file(path: Path) -> pl.LazyFrame:
    """A Parquet file's table, lazily; its times with a time zone Polars does not know read as UTC.

    Arrow stores a time with a zone as the instant in UTC and the zone as a name, which Polars must
    know: pandas writes a fixed offset such as ``+05:30`` for ``pd.to_datetime("…+05:30")``, other
    tools ``Z`` or ``UTC+0``, and Polars panics on any of them but whole hours (it reads ``+05:00``
    as ``Etc/GMT-5``). Such a column is read by pyarrow and its zone set to UTC, which keeps every
    instant as it is; the other files are scanned by Polars, lazily.

    Examples
    --------
    >>> import tempfile
    >>> import pyarrow as pa
    >>> import pyarrow.parquet as pq
    >>> path = Path(tempfile.mkdtemp()) / "touches.parquet"
    >>> ts = pa.array([0], pa.timestamp("s", tz="UTC")).cast(pa.timestamp("s", tz="+05:30"))
    >>> pq.write_table(pa.table({"ts": ts}), path)
    >>> scan_parquet_file(path).collect()["ts"].to_list()
    [datetime.datetime(1970, 1, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC'))]
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        unknown = _unknown_zones(pq.read_schema(path))
    except (pa.ArrowException, OSError):
        unknown = []  # not readable as Parquet: Polars says so, as it does for any file
    if not unknown:
        return pl.scan_parquet(path)
    frame = pl.from_arrow(_zones_as_utc(pq.read_table(path), unknown))
    assert isinstance(frame, pl.DataFrame)  # a table converts to a frame (a column alone would be a series)
    return frame.lazy()


def _unknown_zones(schema: pa.Schema) -> list[int]:
    """The columns of an Arrow schema holding times with a time zone Polars does not know."""
    import pyarrow as pa

    return [i for i, f in enumerate(schema) if pa.types.is_timestamp(f.type) and not _polars_knows_zone(f.type.tz)]


def _zones_as_utc(table: pa.Table, columns: list[int]) -> pa.Table:
    """``table`` with the times of ``columns`` in UTC: the same instants (Arrow stores them in UTC in any zone)."""
    import pyarrow as pa

    for i in columns:
        column = table.column(i)
        table = table.set_column(i, table.field(i).name, column.cast(pa.timestamp(column.type.unit, tz="UTC")))
    return table


def _polars_knows_zone(zone: str | None) -> bool:
    """Whether Polars reads a time zone named so in an Arrow schema (None, no zone, it does)."""
    if zone is None:
        return True
    try:
        pl.Series([], dtype=pl.Datetime("us", zone))
    except pl.exceptions.PolarsError:
        return False
    return True


def check_csv_file(path: Path, table: str) -> Problem | None:
    """Catch files that are not UTF-8 comma-separated text, before Polars reads them.

    The start of the file tells binary data, UTF-16, lines ending with CR alone (which Polars, splitting
    at LF, would read as one endless header), another delimiter and repeated columns; then the whole
    file's encoding and quoting are checked in chunks (:func:`~nextmove.book.csvscan.scan_csv_file`).
    Returns one problem saying what the file is and what to do, or None when it looks right.
    """
    label = str(path)
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        return Problem(Rule.UNREADABLE_FILE, table, label, "a header row naming the columns; the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            label,
            "UTF-8 text; the file is UTF-16: save it as UTF-8 CSV",
        )
    if head.startswith((b"PAR1", b"PK\x03\x04", b"\x1f\x8b", b"%PDF")) or b"\x00" in head:
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            label,
            "a CSV text file; this is binary data (a spreadsheet, archive or Parquet file named .csv?)",
        )
    try:
        text = _decode_prefix(head)
    except UnicodeDecodeError as exc:
        before = head[: exc.start]
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            label,
            not_utf8_message(head[exc.start], before.count(b"\n") + 1),
            row=_record_of(before) or None,
        )
    if b"\r" in head.rstrip() and b"\n" not in head:
        # Polars splits lines at LF only, and would read the whole file as one line of a header.
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            label,
            'lines ending with LF or CRLF; its lines end with CR only (Excel for Mac\'s "CSV (Macintosh)"): '
            'save it as "CSV UTF-8"',
        )
    header_line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    header = next(csv.reader(io.StringIO(header_line)), [])
    if len(header) <= 1:
        for delim in _DELIMITERS:
            if delim in header_line:
                shown = "a tab" if delim == "\t" else repr(delim)
                return Problem(
                    Rule.UNREADABLE_FILE,
                    table,
                    label,
                    f"comma-separated columns; the header is separated by {shown}: save it with commas",
                )
    names = [h.strip() for h in header]
    # Columns without a name (trailing commas) are left out if empty, or refused by name, later.
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        return Problem(
            Rule.DUPLICATE_COLUMN,
            table,
            label,
            f"each column once in the header; repeated: {', '.join(dupes)}",
        )
    # The whole file, not a sample: a quote left open near its end loses rows as surely as one near its start.
    found = scan_csv_file(path, len(header))
    if found is not None:
        row, expected = found
        return Problem(Rule.UNREADABLE_FILE, table, label, expected, row=row)
    return None


def _record_of(before: bytes) -> int:
    """The record (0 = the header, then data rows from 1) a byte lies in, given the bytes of the file before it.

    A line break ends a record only outside quotes, and quotes toggle in and out of a field (a
    doubled quote toggles twice), so the parity of the quotes before each line break tells.

    Examples
    --------
    >>> _record_of(b'id,note\\na1,"x\\ny"\\na2,')
    2
    """
    records = 0
    quoted = False
    for piece in before.split(b"\n")[:-1]:
        quoted ^= piece.count(b'"') % 2 == 1
        if not quoted:
            records += 1
    return records


def csv_header(path: Path) -> list[str] | None:
    """The header cells of a CSV file as written (a UTF-8 BOM removed); None if it cannot be read so."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _decode_prefix(head: bytes) -> str:
    """Decode a file prefix as UTF-8, forgiving only a multi-byte character cut at the end."""
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(head) == _SNIFF_BYTES:
            return head[: exc.start].decode("utf-8")
        raise


def check_parquet_file(path: Path, table: str) -> Problem | None:
    """Catch files named .parquet that are not Parquet."""
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            str(path),
            "a Parquet file; this file does not start and end with the Parquet marker (truncated, or another format?)",
        )
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        unknown = _unknown_zones(schema)
        if unknown:  # read as scan_parquet_file reads them, without their rows
            pl.from_arrow(_zones_as_utc(schema.empty_table(), unknown))
        else:
            pl.read_parquet_schema(path)
    except (Exception, pl.exceptions.PanicException) as exc:  # pyarrow/polars raise several kinds for a corrupt footer
        return Problem(
            Rule.UNREADABLE_FILE,
            table,
            str(path),
            f"a readable Parquet file; reading it failed: {exc}",
        )
    return None


_LINE = "__line"
_TEXT = "__text"
_QUOTED = r'"[^"]*"?'
"""A quoted part of a line: from a quote to the next one (a doubled quote inside a value ends a part and starts
the next, leaving the same separators outside), or to the end of the line when the value goes on on the next."""


@dataclass(frozen=True)
class ShortRows:
    """The data rows of a CSV file with fewer fields than its header names (:func:`short_csv_rows`)."""

    count: int
    first: list[tuple[int, int, int]]
    """The first rows, each ``(row, fields, line)``: its number (1 = the first after the header), how many
    fields it has, and the line of the file it starts on."""


def short_csv_rows(path: Path, fields: int, limit: int) -> ShortRows:
    """The data rows of CSV file ``path`` with fewer than ``fields`` fields (a row cut short).

    Polars fills the fields a row lacks with nulls, so a row cut short (an export cut off, a value
    with a line break but no quotes) reads as a row with empty values. The fields are counted on the
    raw lines instead, in vectorised passes that hold no line: the separators outside quotes, and
    where a quoted value holds a line break, the lines of its record, told by the parity of the
    quotes before each line (as Polars splits a file into records). A line that is empty or only
    separators is a row of empty cells, which validation skips, not a short one. Meant for a file
    Polars has read: one with a quote inside a value not quoted is refused by Polars first.

    It costs about a tenth of validating the file (1.7 s of CPU for 5M lines, 284 MiB, against 17 s
    for a book of them), so validation counts only when a row can be short: when the last column
    the header names is empty in some row (``bench/validate.py``'s signals never are).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "accounts.csv"
    >>> _ = path.write_text('id,note,arr\\na1,"one, two",3\\na2,"on\\ntwo lines"\\n\\na3,5\\na4,x,1')
    >>> short_csv_rows(path, 3, limit=10)
    ShortRows(count=2, first=[(2, 2, 3), (4, 2, 6)])
    """
    try:
        return _short_rows(path, fields, limit)
    except pl.exceptions.PolarsError:
        # A line holding the control character the lines are read apart with: counted in Python (slower).
        return _short_rows_read(path, fields, limit)


def _short_rows_read(path: Path, fields: int, limit: int) -> ShortRows:
    """:func:`short_csv_rows` by Python's CSV reader, whose records are those Polars reads."""
    count = 0
    first: list[tuple[int, int, int]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        start = reader.line_num + 1
        for row, cells in enumerate(reader, start=1):
            if len(cells) < fields and any(cells):
                count += 1
                if len(first) < limit:
                    first.append((row, len(cells), start))
            start = reader.line_num + 1
    return ShortRows(count, first)


def _short_rows(path: Path, fields: int, limit: int) -> ShortRows:
    lines = _raw_lines(path)
    line, text = pl.col(_LINE), pl.col(_TEXT)
    outside = _separators(text)
    looks_short = (line > 0) & ~text.str.contains("^,*$") & (outside + 1 < fields)
    # One pass finds the lines with an odd number of quotes, where a quoted value holding a line break
    # starts or ends, and the lines short if each is a record, as they all are when there is no such value.
    odd_quotes = text.str.count_matches('"', literal=True) % 2 == 1
    found = (
        lines.filter(looks_short | odd_quotes)
        .select(looks_short.alias("short"), odd_quotes.alias("odd"), (outside + 1).alias("fields"), line)
        .select(
            pl.col("short").sum().alias("n"),
            *[pl.col(c).filter("short").head(limit).implode() for c in ("fields", _LINE)],
            pl.col(_LINE).filter("odd").implode().alias("odd"),
        )
        .collect(engine="streaming", optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    )
    odd = found["odd"][0].sort()
    if odd.len() == 0:
        listed = zip(found["fields"][0], found[_LINE][0], strict=True)
        return ShortRows(int(found["n"][0]), [(int(n), int(f), int(n) + 1) for f, n in listed])
    # Lines between an odd line and the next start inside a quoted value: they go on the record before.
    before = pl.lit(odd).search_sorted(line, side="left")
    starts_inside = before % 2 == 1
    ends_inside = pl.lit(odd).search_sorted(line, side="right") % 2 == 1
    pair = before // 2  # the quoted value with line breaks before this line, or the one it is in
    gaps = (odd.gather_every(2, offset=1) - odd.gather_every(2).head(odd.len() // 2)).cum_sum()
    continued = pl.concat([pl.Series([0], dtype=gaps.dtype), gaps])  # lines continuing a record before each pair
    openers = pl.concat([odd, pl.Series([0], dtype=odd.dtype)])  # padded: both branches of the when are computed
    first_line = pl.when(starts_inside).then(pl.lit(openers).gather(2 * pair)).otherwise(line)
    record = first_line - pl.lit(continued).gather(pair)
    commas = pl.when(starts_inside).then(_separators(pl.lit('"') + text)).otherwise(outside)
    spans = starts_inside | ends_inside
    # The lines of the records that span lines, and the short lines of the others: few in a readable file.
    kept = (
        lines.filter(spans | looks_short)
        .select(record.alias("row"), commas.alias("commas"), spans.alias("spans"), line)
        .collect(engine="streaming", optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    )
    short = pl.concat(
        [
            kept.filter(~pl.col("spans")).select("row", (pl.col("commas") + 1).alias("fields"), _LINE),
            kept.filter(pl.col("spans"))
            .group_by("row")
            .agg((pl.col("commas").sum() + 1).alias("fields"), pl.col(_LINE).min())
            .filter((pl.col("row") > 0) & (pl.col("fields") < fields)),
        ]
    ).sort("row")
    return ShortRows(short.height, [(int(r), int(f), int(n) + 1) for r, f, n in short.head(limit).iter_rows()])


def _raw_lines(path: Path) -> pl.LazyFrame:
    """The lines of a text file as read, one string each (empty for an empty line), numbered from 0.

    Read as a CSV file of one column, separated by a control character no text export writes.
    """
    return (
        pl.scan_csv(
            path,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            schema={_TEXT: pl.String},
            truncate_ragged_lines=False,
        )
        .select(pl.col(_TEXT).fill_null(""))
        .with_row_index(_LINE)
    )


def _separators(text: pl.Expr) -> pl.Expr:
    """The separators of a line outside quoted values (a line starting outside one)."""
    return text.str.replace_all(_QUOTED, "").str.count_matches(",", literal=True).cast(pl.Int64)


def short_row_message(expected_fields: int, fields: int, row: int, line: int) -> str:
    """What to say of a row with fewer fields than the header names (:func:`short_csv_rows`).

    Examples
    --------
    >>> print(short_row_message(9, 5, 11, 12))  # doctest: +NORMALIZE_WHITESPACE
    9 fields as in the header; the row has 5, in the record starting on line 12: it is cut short (an export
    cut off, or a value holding a line break without quotes): export the file again
    """
    return (
        f"{expected_fields} fields as in the header; the row has {fields}{on_line(row, line)}: it is cut short "
        "(an export cut off, or a value holding a line break without quotes): export the file again"
    )


def locate_csv_error(path: Path, expected_fields: int) -> tuple[int | None, str]:
    """Find the first row of a CSV file that Polars could not read, for a precise message.

    Only called after Polars failed, so its cost (a pass in Python) is paid only for broken files.
    Rows count data records from 1 (the record after the header), as every problem does: a
    record with a multi-line field spans several lines, so the message names its line too.
    """
    records = 0
    quoted = False
    with path.open("rb") as fh:
        for line_number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (records or None), not_utf8_message(raw[exc.start], line_number)
            quoted ^= raw.count(b'"') % 2 == 1
            if not quoted:
                records += 1
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, strict=True)
        next(reader, None)
        row_number = 0
        start = reader.line_num + 1
        try:
            for row_number, row in enumerate(reader, start=1):
                if len(row) > expected_fields:
                    where = on_line(row_number, start)
                    return row_number, f"{expected_fields} fields as in the header; the row has {len(row)}{where}"
                start = reader.line_num + 1
        except csv.Error as exc:
            where = on_line(row_number + 1, start)
            return (
                row_number + 1,
                f"well-formed CSV (check quotes: a quote inside a field must be doubled): {exc}{where}",
            )
    return None, "a well-formed CSV file"


def frame_source(name: str, frame: pl.DataFrame | pl.LazyFrame, label: str) -> TableSource:
    """A table held in memory (from Python, or read from a database): a Polars frame, or a pandas one.

    Raises
    ------
    BookError
        If ``frame`` is no frame nextmove reads, or a pandas frame that Polars cannot convert.
    """
    if isinstance(frame, pl.LazyFrame | pl.DataFrame):
        lazy = frame.lazy()
        return TableSource(name, label, "frame", lambda: lazy)
    # pandas is no dependency: a pandas frame can only be here if its caller imported pandas already.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(frame, pandas.DataFrame):
        try:
            converted = pl.from_pandas(frame).lazy()
        except Exception as exc:  # pyarrow raises several kinds for a column it cannot convert
            where = next((f", column {c!r}" for c in frame.columns if not _converts(frame[[c]])), "")
            raise BookError(
                f"{label}{where}: the pandas frame of table {name!r} cannot be converted to a Polars frame: "
                f"{exc}; give each column one type (an object column mixing numbers and text?)"
            ) from None
        return TableSource(name, label, "frame", lambda: converted)
    kind = f"{type(frame).__module__}.{type(frame).__qualname__}"
    raise BookError(
        f"{label}: table {name!r} is a {kind}, not a table nextmove reads; pass a Polars frame (pl.from_pandas(df))"
    )


def _converts(frame: object) -> bool:
    """Whether Polars converts pandas ``frame``, to find the column that keeps a whole frame from converting."""
    try:
        pl.from_pandas(frame)
    except Exception:
        return False
    return True


def discover_frames(frames: dict[str, pl.DataFrame | pl.LazyFrame], source: str = "<memory>") -> DiscoveredBook:
    """Tables given as frames by name: Polars frames, or pandas ones (converted with :func:`polars.from_pandas`)."""
    problems: list[Problem] = []
    unknown = sorted(set(frames) - set(CONTRACT))
    if unknown:
        raise BookError(f"unknown table(s) {', '.join(unknown)}: the contract's tables are {', '.join(CONTRACT)}")
    tables = {name: frame_source(name, frame, f"{source}:{name}") for name, frame in frames.items()}
    for name, spec in CONTRACT.items():
        if spec.required and name not in tables:
            problems.append(
                Problem(Rule.MISSING_TABLE, name, f"{source}:{name}", f"a table named {name!r} (it is required)")
            )
    return DiscoveredBook(source, tables, problems)
