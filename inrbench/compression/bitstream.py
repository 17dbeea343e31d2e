"""The ``.inrb`` bitstream: a neural image as a file that rebuilds its network alone.

Layout (little-endian)::

    b"INRB" | u8 format version | u32 CRC-32 | u32 n | header: n bytes of zlib(JSON)
    | histograms (range coding only): per bit width b, the first and last symbol used and the
      counts between, as LEB128 varints
    | chunk 0 | chunk 1 | ...

The JSON header holds the model's registered name and constructor arguments, the signal's
shape/channels/range, the coding, and per chunk the list of tensor entries (name, shape,
dtype, optional slice, and for a quantized tensor its bit width and scheme) with the chunk's
byte length. A chunk holds, for each entry in order, either the raw tensor (float32 as the
model holds it) or the quantizer's parameters (f32 scale, i32 zero point, f32 offset when the
entry has one), followed by the chunk's integer symbols per bit width: a u32 word count and
the words of one ``constriction`` range coder (``coding="range"``, Categorical model with the
file's shared empirical frequencies, as Strümpler et al. write adaptive frequencies), or the
symbols packed at b bits each (``coding="fixed"``). Chunks let a once-for-all network be
decoded from the front of the file: chunk k holds what sub-network k adds to the previous ones.
Everything the decoder needs is in the file; every byte is counted in the rate.

Nothing the file declares is trusted before it is checked: the header is inflated up to
:data:`MAX_HEADER_BYTES`, its entries must be well formed (shapes of non-negative integers,
bit widths 2..16, known dtypes) and declare at most :data:`MAX_WEIGHTS` values in all before the
decoder allocates anything (:func:`check_header`); the caller compares the shapes with the
network the header names (``inrbench.compress``).

The CRC-32 (zlib's, ISO-HDLC polynomial) covers every byte of the file but its own four: magic,
version, header, frequencies and chunks. It is checked before anything is decoded, so a
damaged file is refused in one line instead of decoding to another network (CRC-32 detects
every error burst of up to 32 bits, so any one changed byte). Format 1 files (no CRC) are still
read, with a line saying that they cannot be checked.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from inrbench.compression.quant import Quantized
from inrbench.console import note
from inrbench.errors import DataError

MAGIC = b"INRB"
VERSION = 2
UNCHECKED = 1  # the format before the CRC: read without a check
_PREFIX = {1: struct.Struct("<BI"), 2: struct.Struct("<BII")}  # after MAGIC
CODINGS = ("range", "fixed")
#: the most values a file may declare in all (1 GiB as float32): more than any INR holds
MAX_WEIGHTS = 2**28
#: the most bytes the zlib-compressed JSON header may inflate to
MAX_HEADER_BYTES = 2**24
_BITS = range(2, 17)  # the quantizers' bit widths (compression.quant.check_bits)
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


@dataclass
class Entry:
    """One tensor (or a slice of one) to store: a float tensor or a ``Quantized`` one."""

    name: str
    value: torch.Tensor | Quantized
    slice: list[list[int]] | None = None  # [[start, stop], ...] per axis of the full tensor

    @property
    def quantized(self) -> bool:
        return isinstance(self.value, Quantized)


@dataclass
class Decoded:
    header: dict
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    slices: dict[str, list[tuple[list[list[int]], torch.Tensor]]] = field(default_factory=dict)
    quantized: dict[str, Quantized] = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)


# -- small binary helpers ----------------------------------------------------------------

def _varints(values) -> bytes:
    out = bytearray()
    for v in values:
        v = int(v)
        while True:
            byte = v & 0x7F
            v >>= 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _read_varints(buf: memoryview, pos: int, n: int) -> tuple[list[int], int]:
    values = []
    for _ in range(n):
        v = shift = 0
        while True:
            if pos >= len(buf):
                raise DataError("bitstream truncated in its symbol frequencies")
            byte = buf[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(v)
    return values, pos


def _histogram(counts: np.ndarray) -> bytes:
    """Symbol counts as varints: first and last used symbol, then the counts between."""
    used = np.flatnonzero(counts)
    lo, hi = (int(used[0]), int(used[-1])) if used.size else (0, 0)
    return _varints([lo, hi, *counts[lo:hi + 1]])


def _read_histogram(buf: memoryview, pos: int, bits: int) -> tuple[np.ndarray, int]:
    (lo, hi), pos = _read_varints(buf, pos, 2)
    if not 0 <= lo <= hi < 2**bits:
        raise DataError("bitstream symbol frequencies are corrupt")
    values, pos = _read_varints(buf, pos, hi - lo + 1)
    counts = np.zeros(2**bits, dtype=np.int64)
    counts[lo:hi + 1] = values
    return counts, pos


def _pack(symbols: np.ndarray, bits: int) -> bytes:
    """Fixed-length code: each symbol as ``bits`` bits, most significant first."""
    if symbols.size == 0:
        return b""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    bitarr = ((symbols.astype(np.int64)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitarr.reshape(-1)).tobytes()


def _unpack(buf: bytes, bits: int, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bitarr = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))[: n * bits].reshape(n, bits)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return (bitarr.astype(np.int64) * weights).sum(axis=1)


def _categorical(counts: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def _range_encode(symbols: np.ndarray, counts: np.ndarray) -> bytes:
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        enc.encode(symbols.astype(np.int32), _categorical(counts))
    words = enc.get_compressed()
    return struct.pack("<I", len(words)) + words.astype("<u4").tobytes()


def _range_decode(buf: memoryview, pos: int, n: int, counts: np.ndarray) -> tuple[np.ndarray, int]:
    import constriction

    (n_words,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    words = np.frombuffer(buf[pos:pos + 4 * n_words], dtype="<u4").astype(np.uint32)
    if words.size != n_words:
        raise DataError("bitstream truncated in its range-coded symbols")
    pos += 4 * n_words
    if n == 0:
        return np.zeros(0, dtype=np.int64), pos
    dec = constriction.stream.queue.RangeDecoder(words)
    return dec.decode(_categorical(counts), n).astype(np.int64), pos


def _shape_of(entry: Entry) -> list[int]:
    v = entry.value
    return list((v.symbols if isinstance(v, Quantized) else v).shape)


# -- encoding ------------------------------------------------------------------------------

def encode(model: dict, signal: dict, chunks: list[list[Entry]], coding: str = "range",
           meta: dict | None = None) -> tuple[bytes, dict]:
    """The file's bytes and its size breakdown in bits."""
    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {CODINGS}, got {coding!r}")
    # the shared symbol frequencies, per bit width, over every chunk
    counts: dict[int, np.ndarray] = {}
    for chunk in chunks:
        for e in chunk:
            if e.quantized:
                q = e.value
                c = counts.setdefault(q.bits, np.zeros(2**q.bits, dtype=np.int64))
                c += np.bincount(q.symbols.reshape(-1).numpy(), minlength=2**q.bits)
    bodies, chunk_heads = [], []
    for chunk in chunks:
        body, entries, groups = bytearray(), [], {}
        for e in chunk:
            head = {"name": e.name, "shape": _shape_of(e)}
            if e.slice is not None:
                head["slice"] = e.slice
            if e.quantized:
                q = e.value
                head["q"] = {"bits": q.bits, "scheme": q.scheme,
                             **({"offset": True} if q.offset != 0.0 else {})}
                body += struct.pack("<fi", q.scale, q.zero)
                if q.offset != 0.0:
                    body += struct.pack("<f", q.offset)
                groups.setdefault(q.bits, []).append(q.symbols.reshape(-1).numpy())
            else:
                t = e.value.detach().cpu().contiguous()
                dtype = str(t.dtype).replace("torch.", "")
                if dtype not in _DTYPES:
                    raise ValueError(f"cannot store tensor {e.name} of dtype {t.dtype}")
                head["dtype"] = dtype
                body += t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
            entries.append(head)
        for bits in sorted(groups):
            symbols = np.concatenate(groups[bits])
            body += (_range_encode(symbols, counts[bits]) if coding == "range"
                     else _pack(symbols, bits))
        bodies.append(bytes(body))
        chunk_heads.append({"tensors": entries, "nbytes": len(body)})
    hist = b"".join(_histogram(counts[b]) for b in sorted(counts)) if coding == "range" else b""
    header = {"format": VERSION, "model": model, "signal": signal, "coding": coding,
              "histogram_bits": sorted(counts) if coding == "range" else [],
              "histogram_nbytes": len(hist), "chunks": chunk_heads, "meta": meta or {}}
    head = zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 9)
    rest = struct.pack("<I", len(head)) + head + hist + b"".join(bodies)
    crc = zlib.crc32(rest, zlib.crc32(MAGIC + bytes([VERSION])))
    data = MAGIC + struct.pack("<BI", VERSION, crc) + rest
    prefix = len(MAGIC) + _PREFIX[VERSION].size
    sizes = {"total_bits": 8 * len(data), "header_bits": 8 * (prefix + len(head)),
             "histogram_bits": 8 * len(hist), "chunk_bits": [8 * len(b) for b in bodies]}
    return data, sizes


# -- decoding ------------------------------------------------------------------------------

def verify(data: bytes, warn: bool = True) -> int:
    """The file's format version once its CRC-32 matches (format 1: unchecked, with a line
    saying so); a DataError naming the mismatch otherwise."""
    if len(data) < len(MAGIC) + 1 or data[:4] != MAGIC:
        raise DataError("not an inrbench bitstream (.inrb): the file does not start with INRB")
    version = data[4]
    if version not in _PREFIX:
        raise DataError(f"bitstream format {version} is not supported (this inrbench reads "
                        f"formats {', '.join(map(str, sorted(_PREFIX)))}): the file is corrupt "
                        f"or from a newer inrbench")
    if len(data) < len(MAGIC) + _PREFIX[version].size:
        raise DataError(f"bitstream truncated: {len(data)} bytes, shorter than its fixed header")
    if version == UNCHECKED:
        if warn:
            note("bitstream format 1 has no checksum: decoding it unchecked (inrbench compress "
                 "writes format 2)")
        return version
    (stored,) = struct.unpack_from("<I", data, 5)
    computed = zlib.crc32(data[9:], zlib.crc32(data[:5]))
    if stored != computed:
        raise DataError(f"corrupt bitstream: checksum mismatch (CRC-32 stored {stored:08x}, "
                        f"computed {computed:08x} over {len(data)} bytes); the file was damaged "
                        f"or cut after it was written, compress the run again")
    return version


def read_header(data: bytes, warn: bool = True) -> tuple[dict, int]:
    """The JSON header and where the frequencies start, the CRC checked first."""
    version = verify(data, warn)
    *_, n = _PREFIX[version].unpack_from(data, 4)
    start = len(MAGIC) + _PREFIX[version].size
    try:
        inflate = zlib.decompressobj()
        text = inflate.decompress(data[start:start + n], MAX_HEADER_BYTES)
        if inflate.unconsumed_tail:
            raise DataError(f"corrupt bitstream: its header inflates to more than "
                            f"{MAX_HEADER_BYTES:,} bytes")
        header = json.loads(text)
    except (zlib.error, ValueError, RecursionError) as e:
        raise DataError(f"corrupt bitstream: header does not decompress ({e})") from None
    if not isinstance(header, dict):
        raise DataError("corrupt bitstream: its header is not a JSON object")
    check_header(header)
    return header, start + n


def _count(shape) -> int:
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                              and n >= 0 for n in shape):
        raise DataError(f"corrupt bitstream: a tensor shape {str(shape)[:80]} is not a list "
                        f"of non-negative integers")
    total = 1
    for n in shape:
        total *= n
    return total


def check_header(header: dict) -> None:
    """The header's structure and declared sizes, before anything is allocated: every entry
    well formed, every bit width one the quantizers write, at most :data:`MAX_WEIGHTS`
    values in all. A DataError in one line otherwise."""
    try:
        bits_used = header["histogram_bits"]
        chunks = header["chunks"]
        if header["coding"] not in CODINGS or not isinstance(chunks, list) \
                or not isinstance(bits_used, list) or not isinstance(header["meta"], dict) \
                or not isinstance(header["model"], dict) or not isinstance(header["signal"], dict):
            raise TypeError("sections of the wrong type")
        if any(b not in _BITS for b in bits_used):
            raise TypeError(f"symbol bit widths {bits_used[:8]}")
        total = 0
        for chunk in chunks:
            if not isinstance(chunk["nbytes"], int) or chunk["nbytes"] < 0:
                raise TypeError("a chunk length")
            for head in chunk["tensors"]:
                if not isinstance(head["name"], str):
                    raise TypeError("a tensor name")
                total += _count(head["shape"])
                if "q" in head:
                    if head["q"]["bits"] not in _BITS or (
                            header["coding"] == "range" and head["q"]["bits"] not in bits_used):
                        raise TypeError(f"tensor {head['name']}'s bit width")
                elif head.get("dtype") not in _DTYPES:
                    raise TypeError(f"tensor {head['name']}'s dtype")
    except DataError:
        raise
    except (KeyError, TypeError, AttributeError) as e:
        what = e.args[0] if isinstance(e, TypeError) and e.args else f"missing {e}"
        raise DataError(f"corrupt bitstream: its header is malformed ({str(what)[:120]}); the "
                        f"file is damaged or was not written by inrbench compress") from None
    if total > MAX_WEIGHTS:
        raise DataError(f"the bitstream declares {total:,} values, more than the {MAX_WEIGHTS:,} "
                        f"any network inrbench decodes holds; the file is corrupt or crafted")


LIBRARY_ERRORS = (AssertionError, ValueError, KeyError, TypeError, IndexError, struct.error,
                   RuntimeError, OverflowError, MemoryError, zlib.error)


def decode(data: bytes, chunks: set[int] | None = None) -> Decoded:
    """Decode the file; with ``chunks``, only those chunks (a once-for-all sub-network's) are
    read: the others are skipped by their declared lengths. The CRC is checked first; an
    error of a library on bytes it cannot vouch for (a format-1 file) is a DataError too."""
    header, pos = read_header(data)
    try:
        return _decode(data, header, pos, chunks)
    except DataError:
        raise
    except LIBRARY_ERRORS as e:
        raise DataError(corrupt_line(e)) from None


def corrupt_line(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return (f"corrupt bitstream: decoding failed ({type(error).__name__}"
            f"{': ' + first if first else ''}); the file is damaged, compress the run again")


def _decode(data: bytes, header: dict, pos: int, chunks: set[int] | None) -> Decoded:
    buf = memoryview(data)
    counts = {}
    for bits in header["histogram_bits"]:
        counts[bits], pos = _read_histogram(buf, pos, bits)
    out = Decoded(header)
    read = 8 * pos  # magic, header and symbol frequencies: every decoder reads them
    for index, chunk in enumerate(header["chunks"]):
        end = pos + chunk["nbytes"]
        if end > len(data):
            raise DataError(f"bitstream truncated: a chunk needs bytes {pos}..{end} of a "
                            f"{len(data)}-byte file")
        if chunks is not None and index not in chunks:
            pos = end
            continue
        groups: dict[int, list[tuple[dict, Quantized]]] = {}
        for head in chunk["tensors"]:
            shape = head["shape"]
            if "q" in head:
                q = head["q"]
                scale, zero = struct.unpack_from("<fi", buf, pos)
                pos += 8
                offset = 0.0
                if q.get("offset"):
                    (offset,) = struct.unpack_from("<f", buf, pos)
                    pos += 4
                groups.setdefault(q["bits"], []).append(
                    (head, Quantized(torch.empty(0), q["bits"], scale, zero, offset,
                                     q["scheme"])))
            else:
                dtype = _DTYPES[head["dtype"]]
                n = int(np.prod(shape)) if shape else 1
                itemsize = torch.empty(0, dtype=dtype).element_size()
                raw = np.frombuffer(buf[pos:pos + n * itemsize],
                                    dtype=torch.empty(0, dtype=dtype).numpy().dtype
                                    .newbyteorder("<"))
                pos += n * itemsize
                _put(out, head, torch.from_numpy(raw.astype(raw.dtype.newbyteorder("="))
                                                 .copy()).reshape(shape))
        for bits in sorted(groups):
            sizes = [int(np.prod(h["shape"])) for h, _ in groups[bits]]
            total = sum(sizes)
            if header["coding"] == "range":
                symbols, pos = _range_decode(buf, pos, total, counts[bits])
            else:
                nbytes = (total * bits + 7) // 8
                symbols = _unpack(bytes(buf[pos:pos + nbytes]), bits, total)
                pos += nbytes
            for (head, q), part in zip(groups[bits], np.split(symbols, np.cumsum(sizes)[:-1])):
                q.symbols = torch.from_numpy(part.copy()).reshape(head["shape"])
                if "slice" not in head:
                    out.quantized[head["name"]] = q
                _put(out, head, q.dequantize())
        if pos != end:
            raise DataError(f"bitstream chunk has {pos - (end - chunk['nbytes'])} bytes of "
                            f"content but declares {chunk['nbytes']}; the file is corrupt")
        read += 8 * chunk["nbytes"]
    if pos != len(data):
        raise DataError(f"bitstream has {len(data) - pos} bytes after its last chunk; the file "
                        f"is corrupt")
    out.sizes = {"total_bits": 8 * len(data), "read_bits": read}
    return out


def _put(out: Decoded, head: dict, value: torch.Tensor) -> None:
    if "slice" in head:
        out.slices.setdefault(head["name"], []).append((head["slice"], value))
    else:
        out.tensors[head["name"]] = value
