"""Byte-level helpers shared by the readers: decoding and CSV parsing."""

from __future__ import annotations

import io

import polars as pl


class ReadError(Exception):
    """A file that cannot be read; carries a reason code and a one-line reason."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, else Latin-1; CRLF -> LF."""
    if b"\x00" in data[:4096]:
        raise ReadError("binary_file", "the file holds binary data (NUL bytes), not a text export")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_csv_strings(data: bytes, what: str) -> pl.DataFrame:
    """Parse a CSV export with every column as text ('' -> null); blank lines are skipped."""
    text = decode_text(data)
    if not text.strip():
        raise ReadError("empty_file", f"the {what} is empty")
    try:
        df = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            infer_schema=False,
            has_header=True,
            raise_if_empty=True,
        )
    except Exception as exc:  # polars raises several types for malformed CSV
        raise ReadError("unreadable_csv", f"the {what} is not a readable CSV file ({type(exc).__name__})") from None
    df = df.rename({c: c.strip() for c in df.columns})
    # Drop rows that are entirely blank (trailing blank lines in some exports).
    if df.width:
        df = df.filter(~pl.all_horizontal(pl.all().is_null() | (pl.all().str.strip_chars() == "")))
    return df
