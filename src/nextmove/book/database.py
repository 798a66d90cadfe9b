"""A book held in a SQL database (SQLite or PostgreSQL): its tables and views found, then read in one snapshot.

Tables and views are matched to the contract's tables without regard to case, as a folder's files
are (``"Touches"`` is the touches table). Every table is read within one read-only transaction
(PostgreSQL: ``REPEATABLE READ``; SQLite: one read transaction), so a load committed while the
book is read is seen whole or not at all. PostgreSQL tables are read with ``COPY … TO STDOUT`` as
CSV text, in batches that Polars parses and types by the columns' database types; SQLite tables
are read in batches of rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from nextmove._urls import mask_unparsed_url, mask_url, url_secrets
from nextmove._words import plural
from nextmove.book.contract import CONTRACT
from nextmove.book.problems import Problem, Rule
from nextmove.book.sources import DiscoveredBook, TableSource, frame_source
from nextmove.errors import BookError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Connection, Engine

_BATCH_BYTES = 32 << 20
"""CSV text a PostgreSQL table is parsed by (a record is never cut): 3M signal rows (171 MiB) in six batches."""

_BATCH_ROWS = 100_000
"""Rows a SQLite table is read by."""

_LISTED = 20
"""Tables and views named at most when the one a book requires is missing."""

_KINDS = {"table": "table", "view": "view", "materialized": "materialized view", "foreign": "foreign table"}

_URL_FORM = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH"
_ENCODE = (
    "if the password holds @, :, /, ?, # or %, percent-encode it (@ as %40, : as %3A, / as %2F, ? as %3F, "
    "# as %23, % as %25; Python: urllib.parse.quote(password, safe=''))"
)
_SEARCH_PATH = "?options=-csearch_path%3DSCHEMA"


@dataclass(frozen=True)
class _Relation:
    """A table or view found in the schema searched."""

    name: str
    kind: str
    """``table``, ``view``, ``materialized view`` or ``foreign table``."""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class _Where:
    """Where a database's tables are looked for, and by whom."""

    shown: str
    """The URL as shown (passwords hidden)."""
    schema: str | None
    """The schema searched (PostgreSQL: the first of the search_path the user may use); None for SQLite."""
    user: str | None = None
    """The database user (PostgreSQL)."""
    search_path: str | None = None
    """The search_path setting (PostgreSQL)."""

    @property
    def place(self) -> str:
        return "the database" if self.schema is None else f"schema {self.schema!r}"


def discover_database(url: str) -> DiscoveredBook:
    """The contract tables of a SQL database (SQLite or PostgreSQL), read whole into memory in one snapshot.

    A table or view (PostgreSQL: a materialized or foreign one too) is matched to a contract table
    by its name in any case (``"Touches"``, ``SIGNALS``); two for one table are a problem naming
    both. One whose name starts with a table's but is not read (``signals_2024``) is noted, as a
    folder's files are; when ``accounts`` is missing, the problem lists what the schema searched
    holds, and where an ``accounts`` table is if in another schema.

    PostgreSQL columns of types Polars has no counterpart for (``uuid``, ``inet``, ``json``,
    ``jsonb``, arrays, intervals …) are read as the text PostgreSQL writes for them, as a CSV
    export of the table would hold them; a value that cannot be read in its column's type (a
    timestamp ``infinity``) is a problem naming the table, the row and the column.

    Raises
    ------
    BookError
        If the URL cannot be read or connected to, a SQLite path is not a file or not a SQLite
        database, or a table cannot be read (the user may not, say; the message says what to grant).
    """
    import sqlalchemy as sa

    engine = _create_engine(url)
    shown = mask_url(engine.url)
    secrets = url_secrets(engine.url)
    try:
        with _snapshot(engine) as conn, warnings.catch_warnings():
            # A type SQLAlchemy does not know (PostGIS, a custom one) is read as text anyway.
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            return _read_book(conn, shown)
    except sa.exc.SQLAlchemyError as exc:
        reason = _scrubbed(f"{exc.__class__.__name__}: {exc}", secrets)
        raise BookError(f"{shown}: cannot read the book from the database: {reason}") from None
    finally:
        engine.dispose()


def _create_engine(url: str) -> Engine:
    """The engine for book URL ``url``: ``postgres://`` read as PostgreSQL through psycopg 3, a SQLite file checked."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    # ValueError: a port that is not a number, as a raw @ in a password makes. Neither the URL nor the
    # parser's reason is shown whole: either may hold part of the password.
    except (sa.exc.ArgumentError, ValueError):
        raise BookError(
            f"{mask_unparsed_url(url)}: cannot read this database URL (the form is {_URL_FORM}); {_ENCODE}"
        ) from None
    parsed = _with_driver(parsed)
    try:
        engine = sa.create_engine(parsed)
    except Exception as exc:
        # SQLAlchemy's message may quote the URL whole.
        reason = _scrubbed(str(exc).replace(url, mask_url(url)), url_secrets(parsed))
        raise BookError(f"{mask_url(parsed)}: not a database URL SQLAlchemy understands: {reason}") from None
    database = engine.url.database
    sqlite_file = engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if sqlite_file and not str(database).startswith("file:"):
        path = Path(str(database))
        problem = None
        if path.is_dir():
            problem = (
                f"{database!r} is a folder, not a SQLite database file; for a book of CSV or Parquet files, pass "
                f"the folder itself as the book (--book {database}, without sqlite:///)"
            )
        elif not path.is_file():
            # Connecting would create an empty file there, and the book would read as one without tables.
            problem = f"no such SQLite database file {database!r}; check the path (relative to {Path.cwd()})"
        elif not _sqlite_file(path):
            # A table file of a folder book given as the database names its folder; anything else, FOLDER.
            folder = path.parent if path.suffix.lower() in (".csv", ".parquet") else "FOLDER"
            problem = (
                f"{database!r} is not a SQLite database (it does not start with SQLite's header); for a book of "
                f"CSV or Parquet files, pass the folder holding them as the book (--book {folder}, without "
                "sqlite:///), else give the right database file"
            )
        if problem is not None:
            engine.dispose()
            raise BookError(f"{mask_url(engine.url)}: {problem}")
    return engine


_SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (https://www.sqlite.org/fileformat.html)."""


def _sqlite_file(path: Path) -> bool:
    """Whether the file at ``path`` can be a SQLite database: empty (SQLite makes it one) or starting with its header.

    A file that cannot be read is left to the driver, whose error says so.
    """
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError:
        return True
    return head in (b"", _SQLITE_HEADER)


def _with_driver(url: URL) -> URL:
    """``url`` with PostgreSQL's driver named: ``postgres://`` (Heroku's and Supabase's) is ``postgresql+psycopg``.

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> _with_driver(sa.make_url("postgres://me@db/crm")).drivername
    'postgresql+psycopg'
    """
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql" and not driver:
        driver = "psycopg"
    name = f"{backend}+{driver}" if driver else backend
    return url if name == url.drivername else url.set(drivername=name)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one read-only transaction: every table read through it is read as of one moment.

    PostgreSQL reads in ``REPEATABLE READ``, whose snapshot is taken at the first query; SQLite in
    one read transaction (``BEGIN``; Python's driver would otherwise read each query apart), which
    in WAL mode reads one snapshot and otherwise keeps writers out until it ends.
    """
    import sqlalchemy as sa

    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        options: dict[str, Any] = {}
    elif engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    else:
        options = {}
    with engine.connect() as conn:
        conn = conn.execution_options(**options) if options else conn
        with conn.begin() as transaction:
            yield conn
            transaction.rollback()


def _read_book(conn: Connection, shown: str) -> DiscoveredBook:
    import sqlalchemy as sa

    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # The session's settings for this transaction only: times written in UTC, dates as ISO, floats in full.
        for setting in ("TimeZone TO 'UTC'", "DateStyle TO 'ISO, YMD'", "extra_float_digits TO 3"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
        conn.exec_driver_sql("SET LOCAL client_encoding TO 'UTF8'")
        schema, user, search_path = conn.exec_driver_sql(
            "SELECT current_schema(), current_user, current_setting('search_path')"
        ).one()
        where = _Where(shown, schema, user, search_path)
    else:
        where = _Where(shown, None)
    inspector = sa.inspect(conn)
    relations = _relations(conn, inspector, where.schema, postgres)
    tables: dict[str, TableSource] = {}
    problems: list[Problem] = []
    notes: list[str] = []
    for name, spec in CONTRACT.items():
        found = [r for r in relations if r.name.lower() == name]
        unread = [r for r in relations if r.name.lower().startswith(name) and r not in found]
        if len(found) > 1:
            problems.append(
                Problem(
                    Rule.AMBIGUOUS_TABLE,
                    name,
                    shown,
                    f"one table or view for table {name!r}; {where.place} has {' and '.join(map(str, found))}: "
                    "drop or rename one",
                )
            )
            continue
        if not found:
            if spec.required:
                problems.append(
                    Problem(Rule.MISSING_TABLE, name, shown, _missing_message(conn, name, relations, where))
                )
            else:
                notes += [
                    f"{r} in {shown} is not read, so the {name} table is empty: nextmove reads a table or view named "
                    f"{name} (in any case); rename it, or create a view {name} of it"
                    for r in unread
                ]
            continue
        relation = found[0]
        notes += [f"{r} in {shown} is not read: the {name} table is read from {relation}" for r in unread]
        label = f"{relation} in {shown}"
        columns = inspector.get_columns(relation.name, schema=where.schema)
        if postgres:
            frame = _copy_table(conn, relation, columns, where, label, name)
        else:
            frame = _fetch_table(conn, relation, columns, label, name)
        if isinstance(frame, Problem):
            problems.append(frame)
            continue
        tables[name] = frame_source(name, frame, label)
    return DiscoveredBook(shown, tables, problems, notes)


def _relations(conn: Connection, inspector: sa.Inspector, schema: str | None, postgres: bool) -> list[_Relation]:
    """The tables and views of the schema searched, sorted by name."""
    import sqlalchemy as sa

    if postgres and schema is None:
        return []  # no schema of the search_path exists, or the user may use none of them
    found = [_Relation(n, _KINDS["table"]) for n in inspector.get_table_names(schema=schema)]
    found += [_Relation(n, _KINDS["view"]) for n in inspector.get_view_names(schema=schema)]
    if postgres:
        from sqlalchemy.dialects.postgresql.base import PGInspector

        assert isinstance(inspector, PGInspector)
        found += [_Relation(n, _KINDS["materialized"]) for n in inspector.get_materialized_view_names(schema=schema)]
        found += [_Relation(n, _KINDS["foreign"]) for n in inspector.get_foreign_table_names(schema=schema)]
        # A partition (signals_2024_01) is read through its partitioned table, and is not one to note.
        partitions = set(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relispartition AND n.nspname = :schema"
                ),
                {"schema": schema},
            ).scalars()
        )
        found = [r for r in found if r.name not in partitions]
    return sorted(found, key=lambda r: r.name)


def _missing_message(conn: Connection, name: str, relations: list[_Relation], where: _Where) -> str:
    """What to say of the required table ``name`` not found: what the place searched has, and where to look."""
    listed = [str(r) for r in relations[:_LISTED]]
    if len(relations) > _LISTED:
        listed.append(f"{len(relations) - _LISTED:,} more")
    has = ", ".join(listed) if relations else "no table or view"
    expected = f"a table or view named {name} (in any case; the {name} table is required)"
    if conn.dialect.name != "postgresql":
        return f"{expected}; the database has {has}"
    if where.schema is None:
        expected += (
            f"; no schema was searched: the search_path ({where.search_path}) names none that exists and "
            f"user {where.user!r} may use"
        )
    else:
        expected += f"; schema {where.schema!r}, the one searched (the first of the search_path), has {has}"
    elsewhere = _elsewhere(conn, name, where)
    quote = conn.dialect.identifier_preparer.quote
    usable = [schema for schema, usage in elsewhere if usage]
    if len(usable) == 1:
        return f"{expected}; {name} is in schema {usable[0]!r}: add ?options=-csearch_path%3D{usable[0]} to the URL"
    if usable:
        schemas = ", ".join(repr(s) for s in usable[:5]) + (f" and {len(usable) - 5:,} more" if len(usable) > 5 else "")
        return f"{expected}; {name} is in schemas {schemas}: add {_SEARCH_PATH} to the URL, SCHEMA the book's"
    if elsewhere:
        schema = elsewhere[0][0]
        return (
            f"{expected}; {name} is in schema {schema!r}, which user {where.user!r} may not use: "
            f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(str(where.user))} (and add "
            f"?options=-csearch_path%3D{schema} to the URL)"
        )
    return f"{expected}; if the book's tables are in another schema, add {_SEARCH_PATH} to the URL"


def _elsewhere(conn: Connection, name: str, where: _Where) -> list[tuple[str, bool]]:
    """The schemas but the one searched holding a table or view named ``name`` (in any case), and whether the user may
    use each.

    Those the user may use come first, then those the search_path names (which it skips for a user
    who may not use them), then by name.
    """
    import sqlalchemy as sa

    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT n.nspname, has_schema_privilege(n.oid, 'USAGE') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND lower(c.relname) = :name "
            "AND n.nspname IS DISTINCT FROM :searched AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%'"
        ),
        {"name": name, "searched": where.schema},
    ).all()
    path = [p.strip().strip('"') for p in (where.search_path or "").split(",")]
    found = [(str(schema), bool(usage)) for schema, usage in rows]
    return sorted(found, key=lambda s: (not s[1], s[0] not in path, s[0]))


_TIMESTAMP = "%Y-%m-%d %H:%M:%S%.f"
"""A PostgreSQL timestamp as written with ``DateStyle`` ISO (an offset after it for ``timestamptz``, ``+00`` in UTC)."""


@dataclass(frozen=True)
class _Column:
    """A PostgreSQL column and how the text ``COPY`` writes for it is read."""

    name: str
    sql_type: str
    """Its type as the database names it (``timestamp with time zone``)."""
    read: Callable[[pl.Expr], pl.Expr] | None
    """The text in its Polars type, null where it cannot be held so; None: kept as text."""
    holds: str = ""
    """What a value of it must be, said in the problem of one that is not."""


def _pg_column(column: dict[str, Any], conn: Connection) -> _Column:
    """How the text PostgreSQL writes for ``column`` (from the inspector) is read.

    Types Polars has no counterpart for (``uuid``, ``inet``, ``json``, ``jsonb``, arrays, intervals …)
    stay text, as a CSV export of the table holds them. A number of ``numeric(p, s)`` is a decimal
    (exact, as an id of 20 digits must be); one of ``numeric`` without a precision, whose scale
    varies by value, is a float.
    """
    import sqlalchemy as sa

    sql_type = column["type"]
    name = str(column["name"])
    try:
        shown = sql_type.compile(dialect=conn.dialect).lower()
    except sa.exc.SQLAlchemyError:  # a type SQLAlchemy did not recognise
        shown = "a type SQLAlchemy does not know"
    if isinstance(sql_type, sa.Boolean):
        return _Column(name, shown, lambda c: c == "t")
    if isinstance(sql_type, sa.Integer):
        return _Column(name, shown, lambda c: c.cast(pl.Int64, strict=False), "a whole number")
    if isinstance(sql_type, sa.Float):  # not a Numeric in SQLAlchemy 2.1
        return _Column(name, shown, lambda c: c.cast(pl.Float64, strict=False), "a number")
    if isinstance(sql_type, sa.Numeric):
        precision, scale = sql_type.precision, sql_type.scale
        if precision is None or precision > 38:
            return _Column(name, shown, lambda c: c.cast(pl.Float64, strict=False), "a number")
        decimal = pl.Decimal(int(precision), int(scale or 0))
        return _Column(name, shown, lambda c: c.cast(decimal, strict=False), "a finite number")
    if isinstance(sql_type, sa.DateTime):
        zone = "%#z" if sql_type.timezone else ""
        return _Column(
            name,
            shown,
            lambda c: c.str.to_datetime(f"{_TIMESTAMP}{zone}", time_unit="us", strict=False),
            "a time between the years 1 and 9999",
        )
    if isinstance(sql_type, sa.Date):
        return _Column(
            name, shown, lambda c: c.str.to_date("%Y-%m-%d", strict=False), "a date between the years 1 and 9999"
        )
    return _Column(name, shown, None)


def _copy_table(
    conn: Connection, relation: _Relation, columns: list[Any], where: _Where, label: str, table: str
) -> pl.DataFrame | Problem:
    """A PostgreSQL table or view read with ``COPY (SELECT …) TO STDOUT`` as CSV, parsed and typed in batches.

    Polars parses the text and keeps each batch in its columns' types, so the peak memory is the
    table as Polars holds it and one batch of text, not every row as Python objects (docs/benchmarks.md).
    """
    import psycopg

    quote = conn.dialect.identifier_preparer.quote
    cols = [_pg_column(c, conn) for c in columns]
    # A first column of 1 keeps a row whose one column is NULL from being an empty line, which Polars skips.
    marker = "_" * (max((len(c.name) for c in cols), default=0) + 1)
    text_schema: dict[str, pl.DataType] = {marker: pl.String(), **{c.name: pl.String() for c in cols}}
    source = f"{quote(str(where.schema))}.{quote(relation.name)}"
    query = f"SELECT {', '.join(['1', *(quote(c.name) for c in cols)])} FROM {source}"
    batches: list[pl.DataFrame] = []
    rows = 0
    found: Problem | None = None

    def read(chunk: bytes) -> None:
        nonlocal rows, found
        try:
            text = pl.read_csv(chunk, has_header=False, schema=text_schema).drop(marker)
        except pl.exceptions.PolarsError as exc:
            found = Problem(Rule.UNREADABLE_FILE, table, label, f"a table Polars can read; reading it failed: {exc}")
            return
        typed = _typed_batch(text, cols, label, table, rows)
        if isinstance(typed, Problem):
            found = typed
            return
        batches.append(typed)
        rows += typed.height

    raw = conn.connection.driver_connection
    assert raw is not None  # a connection in use has its driver's
    try:
        with raw.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            buffer = bytearray()
            while data := copy.read():
                if found is not None:
                    continue  # read to its end, not kept: cancelling the COPY would end the transaction
                buffer += data
                if len(buffer) >= _BATCH_BYTES and (end := _records_end(buffer)):
                    with memoryview(buffer) as view:
                        chunk = bytes(view[:end])
                    del buffer[:end]
                    read(chunk)
            if found is None and buffer:
                read(bytes(buffer))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise BookError(_permission_message(exc, relation, where, conn)) from None
    except psycopg.Error as exc:
        raise BookError(f"{label}: cannot be read: {exc.__class__.__name__}: {exc}") from None
    if found is not None:
        return found
    if not batches:
        return pl.select(
            (pl.lit(None, pl.String) if c.read is None else c.read(pl.lit(None, pl.String))).alias(c.name) for c in cols
        ).clear()
    return pl.concat(batches, rechunk=False)


def _records_end(buffer: bytearray) -> int:
    """Where the last whole CSV record of ``buffer`` ends (0 if none does): after a line break outside quotes.

    ``buffer`` starts at a record. Quotes toggle in and out of a value (a doubled quote toggles
    twice), so a line break with an even number of quotes before it ends a record.

    Examples
    --------
    >>> _records_end(bytearray(b'1,"a\\nb"\\n1,"c\\nd'))
    8
    """
    quotes = buffer.count(b'"')
    end = len(buffer)
    while (line_break := buffer.rfind(b"\n", 0, end)) >= 0:
        quotes -= buffer.count(b'"', line_break, end)
        if quotes % 2 == 0:
            return line_break + 1
        end = line_break
    return 0


def _typed_batch(
    text: pl.DataFrame, cols: list[_Column], label: str, table: str, before: int
) -> pl.DataFrame | Problem:
    """A batch of text in its columns' types, or the problem of the first value that cannot be held in its type."""
    typed = text.with_columns(c.read(pl.col(c.name)).alias(c.name) for c in cols if c.read is not None)
    for c in cols:
        if c.read is None:
            continue
        failed = (typed.get_column(c.name).is_null() & text.get_column(c.name).is_not_null()).arg_true()
        if failed.len():
            index = int(failed[0])
            return Problem(
                Rule.UNREADABLE_FILE,
                table,
                label,
                f"{c.holds} (the column is {c.sql_type}); this value cannot be held as one: store NULL for a "
                "missing value, or read the table through a view that casts the column to text",
                row=before + index + 1,
                column=c.name,
                value=str(text.get_column(c.name)[index]),
            )
    return typed


def _permission_message(exc: Any, relation: _Relation, where: _Where, conn: Connection) -> str:
    """What to say when the database user may not read ``relation``: what to grant, to whom."""
    quote = conn.dialect.identifier_preparer.quote
    user = quote(str(where.user))
    schema = quote(str(where.schema))
    reason = exc.diag.message_primary or str(exc)
    return (
        f"{relation} in {where.shown} cannot be read: {reason}: user {where.user!r} needs to read it: "
        f"GRANT SELECT ON {schema}.{quote(relation.name)} TO {user} (and GRANT USAGE ON SCHEMA {schema} TO {user}); "
        "for a view, its owner needs SELECT on the tables it reads"
    )


def _fetch_table(
    conn: Connection, relation: _Relation, columns: list[Any], label: str, table: str
) -> pl.DataFrame | Problem:
    """A SQLite table or view read in batches of rows.

    SQLite keeps any value in any column, whatever its declared type: text columns are read as
    text, and the others take the type of their values (as over every row at once: a column
    with a whole number in one batch and a fraction in another is a column of floats).
    """
    import sqlalchemy as sa

    quote = conn.dialect.identifier_preparer.quote
    declared = {str(c["name"]): c["type"] for c in columns}
    text = {n: pl.String for n, t in declared.items() if isinstance(t, sa.String)}
    query = f"SELECT * FROM {quote(relation.name)}"
    batches: list[pl.DataFrame] = []
    rows = 0
    with conn.exec_driver_sql(query, execution_options={"yield_per": _BATCH_ROWS}) as result:
        names = list(result.keys())
        for part in result.partitions(_BATCH_ROWS):
            values = [tuple(r) for r in part]
            try:
                batch = pl.DataFrame(
                    values, schema=names, orient="row", schema_overrides=text, infer_schema_length=None
                )
            except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError) as exc:
                return _unreadable_column(values, names, text, declared, label, table, rows, exc)
            batches.append(batch)
            rows += len(values)
    if not batches:
        return pl.DataFrame(schema={n: text.get(n, pl.Null()) for n in names})
    try:
        return pl.concat(batches, how="vertical_relaxed", rechunk=False)
    except pl.exceptions.PolarsError as exc:
        return Problem(Rule.UNREADABLE_FILE, table, label, f"a table Polars can read; reading it failed: {exc}")


def _unreadable_column(
    values: list[tuple[Any, ...]],
    names: list[str],
    text: dict[str, type[pl.String]],
    declared: dict[str, Any],
    label: str,
    table: str,
    before: int,
    exc: Exception,
) -> Problem:
    """The problem of a batch of SQLite rows Polars could not make a frame of: the column, and what to do."""
    for i, name in enumerate(names):
        column = [row[i] for row in values]
        try:
            pl.Series(name, column, dtype=text.get(name), strict=True)
        except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
            kinds = sorted({type(v).__name__ for v in column if v is not None})
            type_text = str(declared.get(name) or "no declared type").lower()
            return Problem(
                Rule.UNREADABLE_FILE,
                table,
                label,
                f"values of one type in column {name!r} (declared {type_text}); rows {before + 1:,}–"
                f"{before + len(values):,} hold {plural(len(kinds), 'kind')} of value ({', '.join(kinds)}): "
                "store one type in it (text, numbers, or times as ISO 8601 text)",
                column=name,
            )
    return Problem(Rule.UNREADABLE_FILE, table, label, f"a table Polars can read; reading it failed: {exc}")


def _scrubbed(text: str, secrets: list[str]) -> str:
    """``text`` with every password of the URL hidden."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
