"""Entity keys of one column or several, as the one text key ``predictions.entity_id`` holds.

A key of one column is its value as text (``42``). A key of several columns is their values as text, each
with ``%`` written ``%25`` and ``|`` written ``%7C``, joined by ``|`` (``17|A-1``): readable, one text for one
key and back (:func:`split_key`), and the same whether Arrow builds it (:func:`entity_ids`, every published
row) or PostgreSQL does (:func:`key_sql`, the shard filter of a query source), so that a shard's rows and
the loading table's retry (which hashes ``entity_id``) agree.

Both sides agree on the text of integers, text, dates and booleans; a key column of another type (a float,
a timestamp, a decimal: their text differs between Arrow and PostgreSQL) is refused by :func:`check_key_types`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import SourceError

SEPARATOR = "|"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _escape(text: pa.Array | pa.ChunkedArray) -> Any:
    return pc.replace_substring(pc.replace_substring(text, "%", "%25"), SEPARATOR, "%7C")


def entity_ids(data: pa.RecordBatch | pa.Table, columns: Sequence[str]) -> Any:
    """The text key of every row of ``data`` (null where a key column is null)."""
    if len(columns) == 1:
        return pc.cast(data.column(columns[0]), pa.string())
    parts = [_escape(pc.cast(data.column(c), pa.string())) for c in columns]
    return pc.binary_join_element_wise(*parts, SEPARATOR)


def key_sql(columns: Sequence[str], table: str | None = None) -> str:
    """SQL for the text key of a row (what :func:`entity_ids` gives), over ``table``'s columns."""
    prefix = f"{table}." if table else ""
    texts = [f"CAST({prefix}{_quote_ident(c)} AS text)" for c in columns]
    if len(texts) == 1:
        return texts[0]
    escaped = [f"replace(replace({t}, '%', '%25'), '|', '%7C')" for t in texts]
    return "concat_ws('|', " + ", ".join(escaped) + ")"


def split_key(entity_id: str, columns: Sequence[str]) -> dict[str, str]:
    """The key's columns (as text) from its text key."""
    if len(columns) == 1:
        return {columns[0]: entity_id}
    parts = entity_id.split(SEPARATOR)
    return {c: p.replace("%7C", SEPARATOR).replace("%25", "%") for c, p in zip(columns, parts, strict=False)}


def describe_key(entity_id: str, columns: Sequence[str]) -> str:
    """``customer_id=42`` or ``store_id=3, sku=A-1``: a key by its columns, for messages."""
    return ", ".join(f"{c}={v}" for c, v in split_key(str(entity_id), columns).items())


# Arrow type -> the PostgreSQL type of the typed per-job view's column (and the key types a key may have)
def pg_type(arrow_type: pa.DataType) -> str | None:
    if pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type) or pa.types.is_uint8(arrow_type):
        return "smallint"
    if pa.types.is_int32(arrow_type) or pa.types.is_uint16(arrow_type):
        return "integer"
    if pa.types.is_int64(arrow_type) or pa.types.is_uint32(arrow_type):
        return "bigint"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_dictionary(arrow_type) and (
        pa.types.is_string(arrow_type.value_type) or pa.types.is_large_string(arrow_type.value_type)
    ):
        return "text"
    if pa.types.is_date32(arrow_type) or pa.types.is_date64(arrow_type):
        return "date"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    return None


def key_types(schema: pa.Schema, columns: Sequence[str]) -> list[dict[str, str]]:
    """``[{"name": .., "type": <PostgreSQL type>}, ...]`` of the key columns in ``schema`` (see :func:`check_key_types`)."""
    return [{"name": c, "type": pg_type(schema.field(c).type) or "text"} for c in columns if c in schema.names]


def check_key_types(schema: pa.Schema, columns: Sequence[str], *, where: str) -> None:
    """Refuse a key column whose type has no one text in both Arrow and PostgreSQL."""
    for c in columns:
        if c in schema.names and pg_type(schema.field(c).type) is None:
            raise SourceError(
                f"the entity key column {c!r} is {schema.field(c).type}; a key is made of integers, text, dates or booleans",
                where=where,
                fix=f"cast {c} to an integer or text in the source (e.g. CAST({c} AS bigint)), so that one entity has one key",
            )


KEY_COLUMN = "nightscore_key"  # validation's name for the text key of a key of several columns


def key_column(columns: Sequence[str]) -> str:
    """The column validation and the quarantine match keys on: the key's own (one column), else the text key
    :func:`key_array` adds as ``nightscore_key``."""
    return columns[0] if len(columns) == 1 else KEY_COLUMN


def key_array(data: pa.RecordBatch | pa.Table, columns: Sequence[str]) -> Any:
    """The keys of ``data`` to match rows on: the column itself (one column, its own type), else the text keys."""
    return data.column(columns[0]) if len(columns) == 1 else entity_ids(data, columns)


def with_key(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
    """``batch`` with the text key as a column of its own when the key has several columns (else as it is)."""
    if len(columns) == 1:
        return batch
    return batch.append_column(KEY_COLUMN, entity_ids(batch, columns))
