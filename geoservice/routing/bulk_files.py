"""``geoservice route IN OUT``: route a file of points chunk by chunk, so millions of rows fit in memory.

Input: CSV with ``lon``/``lat`` columns; Parquet — GeoParquet (a WKB geometry column, its CRS from the
file's ``geo`` metadata) or plain Parquet with ``lon``/``lat``; GeoJSON / GeoPackage / Shapefile of
Points. Output keeps every input column and adds the routed codes (and ``department``, ``rule_id``
when the input has a ``category`` column); its format follows the output's suffix: CSV, GeoParquet
(a WGS84 point ``geometry``), GeoPackage (all three written chunk by chunk) or GeoJSON (written once
at the end). Rows whose coordinates cannot be used go to the reject file with the reason; rows
outside every grid stay in the output with empty codes.

The rows travel as Arrow tables from reader to writer (issue 23: the pandas path spent most of the
command's time parsing every CSV field into a Python string and printing it back): a CSV is parsed by
Arrow's multithreaded reader with every column as text, so the other columns come out as they came
in, and only ``lon``/``lat`` are turned into numbers — at C++ speed when the whole chunk parses, and by
a tolerant path (trim, a number pattern, else NaN and a reject) when one value does not. Codes are
taken from the router's code tables by index (``bulk.route_arrow``), never as Python strings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from etl.formats import VECTOR_SUFFIXES, ReadError, choose_crs
from geoservice.routing.bulk import route_arrow
from geoservice.routing.router import Router
from layers.crs import InputCRS, crs_from_file, on_earth, parse_crs, to_wgs84

OUTPUT_SUFFIXES = {".csv", ".parquet", ".gpkg", ".geojson"}
INPUT_FORMATS = "CSV, Parquet/GeoParquet, GeoJSON, GeoPackage or Shapefile"
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # what the tolerant path accepts as lon/lat
NOT_NUMBERS = "lon/lat are missing or not numbers"
OUT_OF_RANGE = "coordinates out of range (lon ±180, lat ±90): wrong --crs, or lat/lon swapped?"
NOT_POINT = "geometry is not a Point"
WKB_POINT_BYTES = 21  # byte order, uint32 type, two float64
WKB_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])  # packed: 21 bytes
GEO_METADATA_VERSION = "1.0.0"
READ_AHEAD_WHILE_MAKING_ROUTER = 4  # chunks parsed while the router is made (up to +25 MB peak on 1 M points)


@dataclass
class RouteSummary:
    """What ``geoservice route`` prints at the end."""

    rejects_path: Path
    rows: int = 0
    routed: int = 0
    outside: int = 0
    rejected: int = 0


@dataclass
class Chunk:
    """Rows of the input: their attribute columns, raw x/y in the input's CRS, and a reason already known."""

    table: pa.Table  # every input column but a geometry column
    x: np.ndarray
    y: np.ndarray
    problems: np.ndarray | None = None  # object array of '' or a reason (e.g. not a Point); None: all ''


def skip_pyarrow_pandas_probe() -> None:
    """Let pyarrow's first conversion find no pandas, in a process that has not imported it yet.

    pyarrow asks whether a value it converts is a pandas object, and to answer it imports pandas on its
    first conversion of any Python or numpy value: 0.23–0.33 s of a one-million-point ``geoservice route``
    of about 3 s (``-X importtime``, cProfile; bench/RESULTS.md), for a command that hands it numpy arrays
    and Arrow tables only. pyarrow has no setting for this, so its one probe is answered "not
    installed" by a finder that refuses the import for that call only. Where pyarrow really needs pandas
    (``to_pandas``, ``Table.from_pandas``: the GeoJSON writer) it imports it again, and that succeeds.
    Only for a command's own process: the finder is process-wide while it stands.
    """
    if "pandas" in sys.modules:
        return

    class _NoPandas:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "pandas":
                raise ImportError("pandas is not probed by geoservice route")

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0.0])  # pyarrow's probe runs here, once per process
    finally:
        sys.meta_path.remove(finder)


def route_file(
    router: Router | Callable[[], Router],
    source: Path,
    target: Path,
    *,
    crs: str | None = None,
    rejects: Path | None = None,
    chunk_rows: int = 200_000,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RouteSummary:
    """Route every row of ``source`` into ``target``; bad rows into ``rejects``.

    ``router`` may be the function that makes it: it is called once the input is open and its first
    chunks are being read, so the two overlap (``_ReadAhead``).

    Both files are written under temporary names beside them and renamed when every row is done: an
    input that breaks half-way (a bad line a million rows in) leaves the previous output as it was,
    not half of a new one.
    """
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ReadError(target, "write .csv, .parquet, .gpkg or .geojson")
    rejects = rejects or target.with_name(target.stem + ".rejected.csv")
    for path in (target, rejects):  # said before any row is routed, not after all of them
        if path.is_dir():
            raise ReadError(path, "is a directory: name the file to write")
        if not path.parent.is_dir():
            raise ReadError(path, f"no such directory {path.parent}")
    total, input_crs, chunks = _open(source, crs, chunk_rows)
    with _ReadAhead(chunks) as reader:
        reader.read(READ_AHEAD_WHILE_MAKING_ROUTER)
        if callable(router):
            router = router()
        return _route_chunks(router, reader, target, rejects, input_crs, total, progress)


def _route_chunks(
    router: Router, chunks: Iterable[Chunk], target: Path, rejects: Path, input_crs: InputCRS, total: int,
    progress: Callable[[int, int], None],
) -> RouteSummary:  # fmt: skip
    partial, partial_rejects = _partial(target), _partial(rejects)
    summary = RouteSummary(rejects)
    writer, reject_writer = _InBackground(_writer(partial, layer=target.stem)), _CsvWriter(partial_rejects)
    try:
        for chunk in chunks:
            summary.rows += chunk.table.num_rows
            lon, lat, problems = checked_wgs84(chunk.x, chunk.y, input_crs)
            if chunk.problems is not None:
                problems = np.where(chunk.problems != "", chunk.problems, problems)
            ok = problems == ""
            table = chunk.table
            if not ok.all():
                bad = table.filter(pa.array(~ok))
                reject_writer.write(bad.append_column("reason", pa.array(problems[~ok], type=pa.string())))
                summary.rejected += int((~ok).sum())
                table, lon, lat = table.filter(pa.array(ok)), lon[ok], lat[ok]
            routed = route_arrow(router, lon, lat, _categories(table))
            located = int(pc.sum(pc.not_equal(routed["grid_code"], "")).as_py() or 0)
            summary.routed += located
            summary.outside += table.num_rows - located
            for name, column in routed.items():
                table = _set_column(table, name, column)
            writer.write(table, lon, lat)
            progress(summary.rows, max(total, summary.rows))
        progress(summary.rows, summary.rows)
        writer.close()
        reject_writer.close()
        os.replace(partial, target)
        if partial_rejects.exists():
            os.replace(partial_rejects, rejects)
        else:
            rejects.unlink(missing_ok=True)  # an earlier run's rejects are not this run's
    finally:
        writer.abort()
        reject_writer.close()
        partial.unlink(missing_ok=True)
        partial_rejects.unlink(missing_ok=True)
    return summary


def _partial(path: Path) -> Path:
    """Where ``path`` is written until it is whole: hidden, beside it (a rename stays on one file system)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def checked_wgs84(x: np.ndarray, y: np.ndarray, crs: InputCRS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 coordinates and, per row, '' or why the row cannot be routed (every bulk engine says the same)."""
    problems = np.full(x.shape, "", dtype=object)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.all():
        lon, lat = to_wgs84(x, y, crs)
    else:
        problems[~finite] = NOT_NUMBERS
        lon, lat = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        if finite.any():
            lon[finite], lat[finite] = to_wgs84(x[finite], y[finite], crs)
    out = finite & ~on_earth(lon, lat)
    if out.any():
        problems[out] = OUT_OF_RANGE
    return lon, lat, problems


def _categories(table: pa.Table) -> np.ndarray | None:
    if "category" not in table.column_names:
        return None
    column = pc.cast(table["category"], pa.string()).fill_null("")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    """Add a routed column, replacing an input column of the same name (as the output can hold one)."""
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, name, column)
    return table.append_column(name, column)


# --- reading -------------------------------------------------------------------------------------------
class _ReadAhead:
    """The chunks, each read in a thread of its own ahead of the one the caller routes.

    Arrow's CSV and Parquet readers release the GIL while they parse and decompress, so on two cores
    reading overlaps routing, as writing does (``_InBackground``). While routing, one chunk is read
    ahead, no more; ``read(depth)`` asks for more first, while the caller makes the router: on a
    version whose grid index nobody had built yet, that build and the parse of the first chunks
    ran one after the other (issue 23; bench/RESULTS.md, "The route command's input read while its
    router is made").
    """

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self._chunks = chunks
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="route-reader")
        self._ahead: deque[Future[Chunk | None]] = deque()  # in input order: one thread reads them

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.shutdown(cancel_futures=True)  # waits for the chunk being read; drops the rest

    def read(self, depth: int) -> None:
        """Have ``depth`` chunks read, or being read, ahead of the caller."""
        while len(self._ahead) < depth:
            self._ahead.append(self._thread.submit(next, self._chunks, None))

    def __iter__(self) -> Iterator[Chunk]:
        self.read(1)
        while (chunk := self._ahead.popleft().result()) is not None:
            self.read(1)
            yield chunk


def _open(source: Path, crs: str | None, chunk_rows: int) -> tuple[int, InputCRS, Iterator[Chunk]]:
    """Rows for the progress bar (a CSV's estimated, 0 when not known), the input's CRS, and its chunks."""
    if not source.exists():
        raise ReadError(source, "no such file")
    if source.is_dir():
        raise ReadError(source, f"a directory; route one file ({INPUT_FORMATS}), or use --engine dask")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        columns = _csv_header(source)
        if not {"lon", "lat"} <= set(columns):
            raise ReadError(source, "a CSV needs 'lon' and 'lat' columns")
        return _estimated_rows(source), parse_crs(crs), _csv_chunks(source, columns, chunk_rows)
    if suffix == ".parquet":
        return _open_parquet(source, crs, chunk_rows)
    if suffix not in VECTOR_SUFFIXES:
        raise ReadError(source, f"unsupported format {suffix!r}; use {INPUT_FORMATS}")
    return _open_vector(source, crs, chunk_rows)


def _csv_header(source: Path) -> list[str]:
    """The column names (a UTF-8 BOM skipped), read with the csv module from the first line only."""
    try:
        with source.open(encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    except UnicodeDecodeError as exc:
        raise ReadError(source, f"cannot read as UTF-8 CSV: {exc}") from exc


def _estimated_rows(source: Path) -> int:
    """Rows for the progress bar, from the first MiB's bytes per line.

    Reading the whole file to count its lines took 0.1 s a million rows (issue 23), and the bar ends
    on the true count anyway.
    """
    return int(source.stat().st_size / _bytes_per_row(source))


def _bytes_per_row(source: Path) -> float:
    with source.open("rb") as handle:
        sample = handle.read(1 << 20)
    return max(len(sample) / max(sample.count(b"\n"), 1), 8)


def _csv_chunks(source: Path, columns: list[str], chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of about ``chunk_rows`` rows; every column read as text, exactly as written."""
    broken: list[str] = []
    lock = threading.Lock()

    def skip_broken(row: Any) -> str:  # called from Arrow's reader threads
        where = f"line {row.number}: " if row.number is not None else ""
        with lock:
            broken.append(f"{where}{row.actual_columns} fields where the header has {row.expected_columns}: "
                          f"{row.text[:200]}")  # fmt: skip
        return "skip"

    reader = _csv_reader(source, columns, chunk_rows, skip_broken)
    pending: list[pa.RecordBatch] = []
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise ReadError(source, f"cannot read as UTF-8 CSV: {exc}") from exc
        pending.append(batch)
        rows += batch.num_rows
        if rows >= chunk_rows:
            yield _csv_chunk(pa.Table.from_batches(pending), columns, broken, lock)
            pending, rows = [], 0
    if pending or broken:
        yield _csv_chunk(pa.Table.from_batches(pending, schema=reader.schema), columns, broken, lock)


def _csv_reader(source: Path, columns: list[str], chunk_rows: int, on_broken: Callable) -> pcsv.CSVStreamingReader:
    block = int(min(max(_bytes_per_row(source) * chunk_rows / 2, 1 << 20), 64 << 20))  # about half a chunk a block
    try:
        return pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=block, use_threads=True),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_broken),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()),
                                                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )  # fmt: skip
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ReadError(source, f"cannot read as UTF-8 CSV: {exc}") from exc


def _csv_chunk(table: pa.Table, columns: list[str], broken: list[str], lock: threading.Lock) -> Chunk:
    """The chunk; rows with the wrong number of fields (skipped by the reader) join it as rejects."""
    with lock:
        taken, broken[:] = list(broken), []
    x, y = _numbers(table["lon"]), _numbers(table["lat"])
    if not taken:
        return Chunk(table, x, y)
    empty = {name: pa.array([""] * len(taken), type=pa.string()) for name in table.column_names}
    table = pa.concat_tables([table, pa.table(empty, schema=table.schema)])
    problems = np.concatenate([np.full(len(x), "", dtype=object), np.array(taken, dtype=object)])
    nan = np.full(len(taken), np.nan)
    return Chunk(table, np.concatenate([x, nan]), np.concatenate([y, nan]), problems)


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 of a text or numeric column; NaN where a value is empty, null or not a number."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type) or pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    try:
        return pc.cast(column, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # some value is not a plain number: the tolerant path, for this chunk only
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    number = pc.if_else(pc.match_substring_regex(text, NUMBER), text, pa.scalar(None, pa.string()))
    return pc.cast(number, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)


def _open_parquet(source: Path, crs: str | None, chunk_rows: int) -> tuple[int, InputCRS, Iterator[Chunk]]:
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReadError(source, f"cannot read as Parquet: {exc}") from exc
    names = parquet.schema_arrow.names
    geo = _geo_metadata(source, parquet.schema_arrow.metadata)
    if geo is not None:
        column = geo.get("primary_column", "geometry")
        spec = geo.get("columns", {}).get(column, {})
        if column not in names:
            raise ReadError(source, f"the GeoParquet metadata names a geometry column {column!r} it does not have")
        if str(spec.get("encoding", "WKB")).upper() != "WKB":
            raise ReadError(source, f"GeoParquet geometry encoding {spec.get('encoding')!r}; WKB is read")
        # GeoParquet: no "crs" key means OGC:CRS84; an explicit null means unknown (then --crs, or WGS84).
        declared = crs_from_file(json.dumps(spec["crs"]) if spec.get("crs") else None) if "crs" in spec else (
            crs_from_file("OGC:CRS84"))  # fmt: skip
        chosen = choose_crs(source, declared, crs)
        return parquet.metadata.num_rows, chosen, _parquet_chunks(parquet, source, chunk_rows, column)
    if not {"lon", "lat"} <= set(names):
        raise ReadError(source, "Parquet needs a geometry column (GeoParquet) or 'lon' and 'lat'")
    return parquet.metadata.num_rows, parse_crs(crs), _parquet_chunks(parquet, source, chunk_rows, None)


def _geo_metadata(source: Path, metadata: dict[bytes, bytes] | None) -> dict | None:
    if not metadata or b"geo" not in metadata:
        return None
    try:
        return json.loads(metadata[b"geo"])
    except ValueError as exc:
        raise ReadError(source, f"unreadable GeoParquet metadata: {exc}") from exc


def _parquet_chunks(parquet: pq.ParquetFile, source: Path, chunk_rows: int, geometry: str | None) -> Iterator[Chunk]:
    """Batches of at most ``chunk_rows`` rows, read row group by row group (memory stays one chunk's)."""
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, use_threads=True):
            table = pa.Table.from_batches([batch])
            if geometry is None:
                yield Chunk(table, _numbers(table["lon"]), _numbers(table["lat"]))
            else:
                yield _geometry_chunk(table.drop_columns([geometry]), table[geometry])
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReadError(source, f"cannot read as Parquet: {exc}") from exc


def _geometry_chunk(table: pa.Table, wkb: pa.ChunkedArray | pa.Array) -> Chunk:
    """x, y of WKB points; a missing geometry is 'missing', anything but a Point says so."""
    x, y, is_point = _wkb_points(wkb)
    problems = None
    missing = np.asarray(pc.is_null(wkb).to_numpy(zero_copy_only=False), dtype=bool)
    if not (is_point | missing).all():
        problems = np.where(is_point | missing, "", NOT_POINT).astype(object)
    return Chunk(table, x, y, problems)


def _wkb_points(wkb: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y (NaN where not a point) and which rows are points; 2-D little-endian points read without GEOS."""
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks() if wkb.num_chunks != 1 else wkb.chunk(0)
    wkb = wkb.cast(pa.binary()) if not pa.types.is_binary(wkb.type) else wkb
    n = len(wkb)
    if n and wkb.null_count == 0:
        offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32, count=n + 1, offset=wkb.offset * 4)
        if offsets[-1] - offsets[0] == WKB_POINT_BYTES * n and (np.diff(offsets) == WKB_POINT_BYTES).all():
            rows = np.frombuffer(wkb.buffers()[2], dtype=WKB_POINT, count=n, offset=int(offsets[0]))
            if (rows["order"] == 1).all() and (rows["type"] == 1).all():
                return rows["x"].copy(), rows["y"].copy(), np.ones(n, dtype=bool)
    import shapely

    geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    is_point = shapely.get_type_id(geoms) == shapely.GeometryType.POINT
    is_point &= ~shapely.is_empty(geoms)
    points = np.where(is_point, geoms, None)
    x = np.where(is_point, shapely.get_x(points), np.nan)
    y = np.where(is_point, shapely.get_y(points), np.nan)
    return x, y, is_point


def _open_vector(source: Path, crs: str | None, chunk_rows: int) -> tuple[int, InputCRS, Iterator[Chunk]]:
    import pyogrio

    try:
        info = pyogrio.read_info(source)
    except pyogrio.errors.DataSourceError as exc:
        raise ReadError(source, f"cannot read: {exc}") from exc
    declared = crs_from_file(info["crs"])
    return int(info["features"]), choose_crs(source, declared, crs), _vector_chunks(source, chunk_rows)


def _vector_chunks(source: Path, chunk_rows: int) -> Iterator[Chunk]:
    import pyogrio

    with pyogrio.open_arrow(source, batch_size=chunk_rows, use_pyarrow=True) as (meta, reader):
        geometry = meta["geometry_name"] or "wkb_geometry"
        for batch in reader:
            table = pa.Table.from_batches([batch])
            yield _geometry_chunk(table.drop_columns([geometry]), table[geometry])


# --- writing -------------------------------------------------------------------------------------------
class _CsvWriter:
    """CSV by Arrow's writer, opened at the first table; the header written plainly (quoted only if needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._writer: pcsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._schema = table.schema
            self._handle = self.path.open("wb")
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(table.column_names)
            self._handle.write(header.getvalue().encode())
            self._writer = pcsv.CSVWriter(self._handle, table.schema,
                                          write_options=pcsv.WriteOptions(include_header=False))  # fmt: skip
        self._writer.write_table(table.cast(self._schema) if table.schema != self._schema else table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            self._writer = None


class _Writer:
    """The routed rows into ``target`` (``lon``/``lat``: WGS84, for formats with a geometry)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def write(self, table: pa.Table, lon: np.ndarray, lat: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (an input with no rows still gets one, with the code columns)."""

    def abort(self) -> None:
        """Release what is open after an error (after ``close`` it does nothing)."""


class _InBackground(_Writer):
    """Another writer, writing each chunk in a thread of its own while the next chunk is read and routed.

    Arrow's writers release the GIL while they encode and compress, so on two cores the write of one
    chunk (0.4 s of a million points' GeoParquet) overlaps the routing of the next. One chunk is
    written at a time, and ``write`` waits for the one before: with the one read ahead, a run holds
    three chunks at most. A failed write is raised by the next ``write`` or by ``close``, so the
    command never reports a file it did not finish.
    """

    def __init__(self, writer: _Writer) -> None:
        super().__init__(writer.target)
        self.writer = writer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="route-writer")
        self._pending: Future[None] | None = None

    def write(self, table: pa.Table, lon: np.ndarray, lat: np.ndarray) -> None:
        self._finish_pending()
        self._pending = self._thread.submit(self.writer.write, table, lon, lat)

    def close(self) -> None:
        self._finish_pending()
        self.writer.close()

    def abort(self) -> None:
        if self._pending is not None:
            self._pending.exception()  # wait for it; the error that brought us here is the one to raise
            self._pending = None
        self._thread.shutdown()
        self.writer.abort()

    def _finish_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


class _CsvOutput(_Writer):
    def __init__(self, target: Path) -> None:
        super().__init__(target)
        self.csv = _CsvWriter(target)

    def write(self, table: pa.Table, lon: np.ndarray, lat: np.ndarray) -> None:
        self.csv.write(table)

    def close(self) -> None:
        if self.csv._writer is None:
            self.target.write_text("grid_code\n")
        self.csv.close()

    def abort(self) -> None:
        self.csv.close()


def wkb_points(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """2-D little-endian WKB points as an Arrow binary array, built with numpy (no GEOS objects)."""
    n = len(lon)
    rows = np.empty(n, dtype=WKB_POINT)
    rows["order"], rows["type"], rows["x"], rows["y"] = 1, 1, lon, lat
    offsets = np.arange(0, WKB_POINT_BYTES * (n + 1), WKB_POINT_BYTES, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rows)])


def geo_metadata() -> bytes:
    """GeoParquet 1.0 metadata of a WGS84 point column named ``geometry``."""
    column = {"encoding": "WKB", "geometry_types": ["Point"], "crs": _wgs84_projjson()}
    return json.dumps({"version": GEO_METADATA_VERSION, "primary_column": "geometry",
                       "columns": {"geometry": column}}).encode()  # fmt: skip


def _wgs84_projjson() -> dict:
    import pyproj

    return pyproj.CRS.from_epsg(4326).to_json_dict()


class _ParquetOutput(_Writer):
    """GeoParquet: one row group per chunk, a WKB ``geometry`` and the ``geo`` metadata (WGS84)."""

    def __init__(self, target: Path) -> None:
        super().__init__(target)
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table, lon: np.ndarray, lat: np.ndarray) -> None:
        if "geometry" in table.column_names:
            table = table.drop_columns(["geometry"])
        table = table.append_column("geometry", wkb_points(lon, lat))
        if self._writer is None:
            self._schema = table.schema.with_metadata({b"geo": geo_metadata()})
            # Dictionaries only where values repeat (the codes): on ids and points they cost time for nothing.
            coded = [c for c in table.column_names if c.endswith("_code") or c in ("department", "category")]
            self._writer = pq.ParquetWriter(self.target, self._schema, compression="snappy", use_dictionary=coded)
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        if self._writer is None:
            self.write(pa.table({"grid_code": pa.array([], pa.string())}), np.empty(0), np.empty(0))
        self.abort()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _GeoOutput(_Writer):
    """GeoPackage chunk by chunk, GeoJSON once at the end (the driver cannot append), through pyogrio."""

    def __init__(self, target: Path, layer: str) -> None:
        super().__init__(target)
        self.layer = layer
        self.held: list[pa.Table] = []
        self.written = False

    def write(self, table: pa.Table, lon: np.ndarray, lat: np.ndarray) -> None:
        if "geometry" in table.column_names:
            table = table.drop_columns(["geometry"])
        table = table.append_column("geometry", wkb_points(lon, lat))
        if self.target.suffix.lower() == ".geojson":
            self.held.append(table)
        else:
            self._write(table, append=self.written)
            self.written = True

    def close(self) -> None:
        if self.held:
            self._write(pa.concat_tables(self.held, promote_options="permissive"), append=False)
            self.held = []
        elif not self.written:
            empty = pa.table({"grid_code": pa.array([], pa.string()), "geometry": pa.array([], pa.binary())})
            self._write(empty, append=False)

    def _write(self, table: pa.Table, append: bool) -> None:
        import geopandas as gpd
        import pyogrio
        import shapely

        frame = table.drop_columns(["geometry"]).to_pandas()
        geometry = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
        driver = "GeoJSON" if self.target.suffix.lower() == ".geojson" else "GPKG"
        pyogrio.write_dataframe(gpd.GeoDataFrame(frame, geometry=geometry, crs=4326), self.target,
                                layer=self.layer, driver=driver, append=append)  # fmt: skip


def _writer(target: Path, layer: str) -> _Writer:
    """The writer for ``target``'s format; ``layer`` names a GeoPackage's or GeoJSON's layer (the file's final name)."""
    suffix = target.suffix.lower()
    if suffix == ".csv":
        return _CsvOutput(target)
    if suffix == ".parquet":
        return _ParquetOutput(target)
    return _GeoOutput(target, layer)
