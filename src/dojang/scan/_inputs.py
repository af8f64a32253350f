"""Inputs of a scan: find what to read, cut it into shards, read one shard into items.

Every input is a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``, ...). Files:
JSONL (``.jsonl``, ``.ndjson``), CSV, Parquet (one row per item, text in one column), plain
text (``.txt``, ``.md``; one file per item) and images (``.png``, ``.jpg``, ``.jpeg``,
``.webp``, ``.bmp``, ``.tif``, ``.tiff``, ``.gif``). Directories are walked recursively.

A shard is a small, self-describing unit of work (a byte offset and line count in a JSONL file,
a row range of a row group, a list of files), so that any worker can read it and a finished one
is never read again on resume.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dojang.errors import InputError
from dojang.scan._deps import require
from dojang.scan._score import Item

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".text")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
TABLE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_TEXT_COLUMN = "text"


@dataclass(frozen=True)
class Shard:
    """``fmt`` jsonl: ``count`` non-blank lines from byte ``offset`` (first line number ``row``);
    parquet: rows ``row .. row+count`` of row group ``group``; csv: rows ``row .. row+count``;
    files: the files in ``files``. ``column`` is the text column (tabular formats) or None when
    the file has no usable column (every row is then an error naming ``problem``). ``id_column``
    names each row by its value there (rows without one keep the positional id)."""

    index: int
    fmt: str
    source: str
    count: int
    row: int = 0
    offset: int = 0
    group: int = 0
    column: str | None = None
    problem: str | None = None
    files: tuple[str, ...] = field(default=())
    id_column: str | None = None  # the column whose value names each row (else file#row or file:line)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(**{**data, "files": tuple(data.get("files", ()))})


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def _fs(url: str) -> tuple[Any, str]:
    fsspec = require("fsspec")
    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ValueError, ImportError) as err:
        raise InputError(f"{url}: cannot open ({err})") from None


def _url(fs: Any, path: str) -> str:
    """A path the same filesystem can open again (local paths stay plain)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def plan(
    inputs: Sequence[str],
    *,
    text_column: str | None = None,
    id_column: str | None = None,
    rows_per_shard: int = 10_000,
    files_per_shard: int = 1_000,
    images_per_shard: int = 32,
) -> tuple[list[Shard], list[dict[str, Any]]]:
    """Shards for ``inputs`` (in a fixed order) and a fingerprint of every file read (path,
    size). Raises :class:`InputError` at once for a missing input or when no tabular file has
    the text column."""
    if not inputs:
        raise InputError("no input given")
    shards: list[Shard] = []
    seen: list[dict[str, Any]] = []
    tables: list[tuple[str, str | None]] = []  # (source, why it has no text column or None)
    for url in inputs:
        fs, root = _fs(url)
        if not fs.exists(root):
            raise InputError(f"{url}: no such file or directory")
        is_dir = fs.isdir(root)
        if is_dir:
            paths = sorted(fs.find(root))
            if not paths:
                raise InputError(f"{url}: the directory is empty")
        else:
            paths = [root]
        texts: list[str] = []
        images: list[str] = []
        skipped = 0
        for path in paths:
            suffix = _suffix(path)
            full = _url(fs, path)
            size = fs.size(path)
            if suffix in TABLE_FORMATS:
                seen.append({"path": full, "size": size})
                new, problem = _plan_table(fs, path, full, TABLE_FORMATS[suffix], text_column, rows_per_shard, len(shards))
                if id_column is not None:
                    new = [replace(sh, id_column=id_column) for sh in new]
                shards.extend(new)
                if new:
                    tables.append((full, problem))
            elif suffix in IMAGE_SUFFIXES:
                seen.append({"path": full, "size": size})
                images.append(full)
            elif suffix in TEXT_SUFFIXES or not is_dir:  # a file named on its own is read as text
                seen.append({"path": full, "size": size})
                texts.append(full)
            else:
                skipped += 1
        if skipped:
            log.info("%s: skipped %d file(s) that are neither text, tables nor images", url, skipped)
        for files, per in ((texts, files_per_shard), (images, images_per_shard)):
            for start in range(0, len(files), per):
                chunk = tuple(files[start : start + per])
                shards.append(Shard(index=len(shards), fmt="files", source=url, count=len(chunk), files=chunk))
    if tables and all(problem is not None for _, problem in tables):
        raise InputError(tables[0][1] or "no text column")
    if not shards:
        raise InputError("the inputs hold nothing to scan (no text, table or image files)")
    return shards, seen


def _pick_column(
    columns: Sequence[str], string_columns: Sequence[str], wanted: str | None, source: str
) -> tuple[str | None, str | None]:
    if wanted is not None:
        if wanted in columns:
            return wanted, None
        return None, f"{source}: no column {wanted!r} (columns: {', '.join(columns) or 'none'})"
    if DEFAULT_TEXT_COLUMN in columns:
        return DEFAULT_TEXT_COLUMN, None
    if len(string_columns) == 1:
        return string_columns[0], None
    return (
        None,
        f"{source}: no {DEFAULT_TEXT_COLUMN!r} column; choose one with --text-column (columns: {', '.join(columns) or 'none'})",
    )


def _json_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _plan_table(
    fs: Any, path: str, source: str, fmt: str, wanted: str | None, per: int, first: int
) -> tuple[list[Shard], str | None]:
    """The file's shards, and why it has no text column (None when it has one). JSONL records
    are judged one by one when read; the first record stands for the file here."""
    shards: list[Shard] = []

    def add(count: int, column: str | None, problem: str | None, *, row: int = 0, offset: int = 0, group: int = 0) -> None:
        index = first + len(shards)
        shards.append(Shard(index, fmt, source, count, row, offset, group, column=column, problem=problem))

    if fmt == "jsonl":
        # One pass over the bytes: the offset of every shard's first line; the text field is
        # guessed from the first record, and the file has it if any record has it (records are
        # judged one by one when read).
        column: str | None = None
        problem: str | None = None
        needle = b""
        offset, line_no, start_offset, start_row, count = 0, 0, 0, 0, 0
        with fs.open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    if count == 0:
                        start_offset, start_row = offset, line_no
                    if column is None:
                        record = _json_or_none(line)
                        keys = list(record) if isinstance(record, dict) else []
                        strings = [k for k in keys if isinstance(record[k], str)] if isinstance(record, dict) else []
                        guess, problem = _pick_column(keys, strings, wanted, source)
                        column = wanted or guess or DEFAULT_TEXT_COLUMN
                        needle = json.dumps(column).encode()
                    elif problem is not None and needle in line:
                        record = _json_or_none(line)
                        if isinstance(record, dict) and column in record:
                            problem = None
                    count += 1
                    if count == per:
                        add(count, column, None, offset=start_offset, row=start_row)
                        count = 0
                offset += len(line)
                line_no += 1
        if count:
            add(count, column, None, offset=start_offset, row=start_row)
        return shards, problem
    pa = require("pyarrow")
    if fmt == "parquet":
        pq = require("pyarrow.parquet")
        try:
            with fs.open(path, "rb") as handle:
                meta = pq.ParquetFile(handle).metadata
                schema = meta.schema.to_arrow_schema()
        except (OSError, pa.ArrowException) as err:
            raise InputError(f"{source}: not a readable Parquet file ({err})") from None
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        column, problem = _pick_column(schema.names, strings, wanted, source)
        row = 0
        for group in range(meta.num_row_groups):
            n = meta.row_group(group).num_rows
            for start in range(0, n, per):
                add(min(per, n - start), column, problem, group=group, row=start, offset=row + start)
            row += n
        return shards, problem
    # csv: parse once to count records (streaming); a shard re-reads up to its records
    header, total = None, 0
    try:
        for record in _csv_records(fs, path):
            if header is None:
                header = record
            else:
                total += 1
    except (OSError, csv.Error) as err:
        raise InputError(f"{source}: not a readable CSV file ({err})") from None
    if header is None:
        raise InputError(f"{source}: the CSV file is empty (a header line is required)")
    column, problem = _pick_column(header, header, wanted, source)
    for start in range(0, total, per):
        add(min(per, total - start), column, problem, row=start)
    return shards, problem


def _csv_records(fs: Any, path: str) -> Iterator[list[str]]:
    """The CSV file's records (the header first), read as UTF-8; bytes that are not UTF-8 come
    through as lone surrogates (``surrogateescape``), so one bad row does not stop the file.
    A record with the wrong number of fields is yielded as it is: the reader judges it."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long document is one field
    with fs.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        yield from csv.reader(handle, strict=False)


# -- reading ---------------------------------------------------------------------------------------
def read(shard: Shard) -> list[Item]:
    """The items of ``shard``, in order: exactly ``shard.count`` of them. An unreadable item
    becomes an item with ``error`` set, never an exception."""
    if shard.fmt == "files":
        return [_read_file(url) for url in shard.files]
    if shard.column is None:
        ids = [f"{shard.source}#{shard.row + i}" for i in range(shard.count)] if shard.fmt != "jsonl" else None
        if ids is None:
            return [Item(f"{shard.source}:{r}", "text", error=shard.problem) for r in _jsonl_rows(shard)]
        return [Item(i, "text", error=shard.problem) for i in ids]
    if shard.fmt == "jsonl":
        return _read_jsonl(shard)
    if shard.fmt == "parquet":
        return _read_parquet(shard)
    return _read_csv(shard)


def _read_file(url: str) -> Item:
    kind = "image" if _suffix(url) in IMAGE_SUFFIXES else "text"
    fs, path = _fs(url)
    try:
        data = fs.cat_file(path)
    except (OSError, FileNotFoundError) as err:
        return Item(url, kind, error=f"cannot read ({err.__class__.__name__})")
    if kind == "image":
        return Item(url, kind, data)
    try:
        return Item(url, kind, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        return Item(url, kind, error=f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})")


def _jsonl_lines(shard: Shard) -> list[tuple[int, bytes]]:
    fs, path = _fs(shard.source)
    out: list[tuple[int, bytes]] = []
    with fs.open(path, "rb") as handle:
        handle.seek(shard.offset)
        line_no = shard.row
        for line in handle:
            if line.strip():
                out.append((line_no, line))
                if len(out) == shard.count:
                    break
            line_no += 1
    return out


def _jsonl_rows(shard: Shard) -> list[int]:
    return [n for n, _ in _jsonl_lines(shard)]


def _read_jsonl(shard: Shard) -> list[Item]:
    column = shard.column
    assert column is not None
    items = []
    for line_no, raw in _jsonl_lines(shard):
        item_id = f"{shard.source}:{line_no + 1}"  # 1-based line numbers, as editors show them
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            items.append(Item(item_id, "text", error=f"not UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})"))
            continue
        except ValueError as err:
            items.append(Item(item_id, "text", error=f"not a JSON record ({err.__class__.__name__}: {str(err)[:80]})"))
            continue
        if shard.id_column is not None and isinstance(record, dict):
            name = record.get(shard.id_column)
            if name is not None and not isinstance(name, (dict, list)):
                item_id = str(name)
        if not isinstance(record, dict) or column not in record:
            items.append(Item(item_id, "text", error=f"no field {column!r} in this record"))
        elif not isinstance(record[column], str):
            items.append(Item(item_id, "text", error=f"field {column!r} is not a string"))
        else:
            items.append(Item(item_id, "text", record[column]))
    return items


def _column_items(values: list[Any], shard: Shard, first_row: int, names: list[Any] | None = None) -> list[Item]:
    items = []
    for i, value in enumerate(values):
        item_id = f"{shard.source}#{first_row + i}"
        if names is not None and names[i] is not None:
            item_id = str(names[i])
        if isinstance(value, str):
            items.append(Item(item_id, "text", value))
        else:
            items.append(Item(item_id, "text", error=f"column {shard.column!r} is {'empty' if value is None else 'not text'}"))
    return items


_LAST_GROUP: dict[tuple[Any, ...], Any] = {}  # the row group read last in this process


def _row_group(shard: Shard) -> Any:
    """The shard's row group (its text and id columns). Shards cut from one large row group
    follow one another, so the group read last is kept: it is decoded once per worker, not once
    per shard. Keyed by the file's size and modification time as well, so a changed file is read
    again."""
    pq = require("pyarrow.parquet")
    fs, path = _fs(shard.source)
    info = fs.info(path)
    tag = (shard.source, shard.group, shard.column, shard.id_column, info.get("size"), str(info.get("mtime")))
    table = _LAST_GROUP.get(tag)
    if table is None:
        with fs.open(path, "rb") as handle:
            pf = pq.ParquetFile(handle)
            columns = [shard.column]
            if shard.id_column is not None and shard.id_column != shard.column and shard.id_column in pf.schema_arrow.names:
                columns.append(shard.id_column)
            table = pf.read_row_group(shard.group, columns=columns)
        _LAST_GROUP.clear()
        _LAST_GROUP[tag] = table
    return table


def _read_parquet(shard: Shard) -> list[Item]:
    table = _row_group(shard)
    columns = table.column_names
    values = table.column(0).slice(shard.row, shard.count).to_pylist()
    names = table.column(shard.id_column).slice(shard.row, shard.count).to_pylist() if shard.id_column in columns else None
    return _column_items(values, shard, shard.offset, names)  # offset: the file row of the shard's first item


def _read_csv(shard: Shard) -> list[Item]:
    fs, path = _fs(shard.source)
    items: list[Item] = []
    records = _csv_records(fs, path)
    header = next(records)
    col = header.index(shard.column) if shard.column in header else -1
    id_col = header.index(shard.id_column) if shard.id_column in header else -1
    n = -1
    while len(items) < shard.count:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as err:  # the rest of the shard cannot be read
            items.extend(
                Item(f"{shard.source}#{shard.row + len(items)}", "text", error=f"unreadable CSV ({err})")
                for _ in range(shard.count - len(items))
            )
            break
        n += 1
        if n < shard.row:
            continue
        item_id = f"{shard.source}#{n}"
        if 0 <= id_col < len(record) and record[id_col] and not _has_surrogate(record[id_col]):
            item_id = record[id_col]
        if len(record) != len(header):
            items.append(Item(item_id, "text", error=f"malformed CSV row: {len(record)} fields, the header has {len(header)}"))
        elif _has_surrogate(record[col]):
            items.append(Item(item_id, "text", error=f"column {shard.column!r} is not UTF-8 text"))
        else:
            items.append(Item(item_id, "text", record[col]))
    return items


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)
