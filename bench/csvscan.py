"""Benchmark of the whole-file check of a CSV file's quoting and encoding (``nextmove.book.csvscan``).

Writes three CSV files of about ``--mib`` MiB each (not counted): signal rows without a quote, the
same rows with every field quoted (as Salesforce and pandas' ``QUOTE_ALL`` write them), and
accounts whose notes column holds a quoted value of two lines with a comma and doubled quotes in
every row. Each is then checked in a fresh child process by :func:`scan_csv_file` (the file read
from the page cache), which prints its wall time, CPU time and peak RSS; the SHA-256 digest that
discovery takes of every file (:func:`nextmove.book.sources.file_stamp`) is timed beside it, for scale.

    .venv/bin/python bench/csvscan.py                  # 1 GiB files
    .venv/bin/python bench/csvscan.py --mib 64         # a quick run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _util import MIB, cpu_seconds, current_rss_bytes, fmt_bytes, machine, peak_rss_bytes, run_child, timed

HERE = Path(__file__).resolve()


def write_files(folder: Path, size: int) -> dict[str, tuple[Path, int]]:
    """The three files of about ``size`` bytes each, by kind, with their header's number of fields."""
    plain = "".join(
        f"K{i % 99_991:06d},2025-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z,logins_wk,{i % 97}\n" for i in range(20_000)
    )
    quoted = "".join('"' + '","'.join(line.split(",")) + '"\n' for line in plain.splitlines())
    notes = "".join(
        f'K{i:06d},"Called {i}, left a ""message""\nsecond line of the note",{i % 97}\n' for i in range(20_000)
    )
    files = {
        "no quotes": ("plain.csv", "account_id,ts,name,value\n", plain, 4),
        "every field quoted": ("quoted.csv", '"account_id","ts","name","value"\n', quoted, 4),
        "a two-line note a row": ("notes.csv", "account_id,notes,value\n", notes, 3),
    }
    out = {}
    for kind, (name, header, block, fields) in files.items():
        path = folder / name
        data = block.encode()
        with path.open("wb") as fh:
            fh.write(header.encode())
            for _ in range(max(1, size // len(data))):
                fh.write(data)
        out[kind] = (path, fields)
    return out


def child(path: Path, fields: int) -> None:
    """Check one file and print the figures as JSON."""
    from nextmove.book.csvscan import scan_csv_file
    from nextmove.book.sources import file_stamp

    file_stamp(path)  # read once, so that both steps read from the page cache
    before = current_rss_bytes()
    cpu = cpu_seconds()
    with timed() as t:
        found = scan_csv_file(path, fields)
    scan_cpu = cpu_seconds() - cpu
    cpu = cpu_seconds()
    file_stamp(path)
    digest_cpu = cpu_seconds() - cpu
    figures = {
        "found": found,
        "wall": t.seconds,
        "cpu": scan_cpu,
        "peak": peak_rss_bytes(),
        "before": before,
        "digest_cpu": digest_cpu,
    }
    print(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of each file in MiB")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return 0
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (path, fields) in write_files(Path(tmp), args.mib * MIB).items():
            r = run_child(HERE, ["--child", str(path), str(fields)])
            if r["found"] is not None:
                print(f"{kind}: the check refused a well-formed file: {r['found']}")
                return 1
            size = path.stat().st_size
            print(
                f"{kind:22s} {fmt_bytes(size):>10s}  wall {r['wall']:5.2f} s  CPU {r['cpu']:5.2f} s "
                f"({r['cpu'] / (size / 1024**3):4.2f} s/GiB)  peak RSS {fmt_bytes(r['peak'])} "
                f"(before the check {fmt_bytes(r['before'])})  "
                f"(SHA-256 digest: CPU {r['digest_cpu']:.2f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
