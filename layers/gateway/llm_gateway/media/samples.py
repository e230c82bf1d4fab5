"""Small, real media files made in code (no assets): PNG images, WAV audio, JPEG frames, MP4
video, PDF documents.

Used by the mock provider to generate media and by tests to send media in.

- `png(w, h, seed, text=)`: an RGB gradient; `text` goes into a `tEXt` "Description" chunk.
- `wav(seconds, rate, freq, text=)`: a mono 16-bit sine tone; `text` goes into a `LIST/INFO`
  `ICMT` chunk after the samples (players ignore it), which `wav_text()` reads back — so the mock
  speech-to-text can return exactly what the mock text-to-speech said.
- `speech_wav(text)`: "speech" for the mock TTS: one short tone per word (pitch from the word),
  about 14 characters per second, with the text embedded as above.
- `jpeg_gray(blocks)`: a baseline JPEG (grayscale, 8x8 blocks of flat gray: only DC coefficients).
- `mp4(seconds, fps, width, height, seed)`: an ISO-BMFF (MP4) file with one Motion-JPEG video
  track (`mp4v` sample entry, `esds` objectTypeIndication 0x6C = JPEG): ftyp, mdat, moov with
  mvhd/trak/tkhd/mdia/mdhd/hdlr/minf/vmhd/dinf/stbl (stsd, stts, stsc, stsz, stco) — a bright
  square moving across a gray background. `mp4_boxes()` walks the box tree.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
import zlib
from array import array


def png(width: int = 64, height: int = 64, seed: int = 0, text: str | None = None) -> bytes:
    """A valid RGB PNG with a deterministic gradient pattern (and an optional tEXt Description)."""
    xs = range(width)
    reds = bytes((x * 4 + seed) % 256 for x in xs)
    rows = []
    for y in range(height):
        g = (y * 4 + seed * 3) % 256
        row = bytearray(1 + 3 * width)  # filter type 0
        row[1::3] = reds
        row[2::3] = bytes((g,)) * width
        row[3::3] = bytes(((x + y) * 2 + seed * 7) % 256 for x in xs)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    extra = chunk(b"tEXt", b"Description\0" + text.encode("latin-1", "replace")) if text else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def png_text(data: bytes) -> str | None:
    """The tEXt "Description" of a PNG made by `png(text=...)`."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            if key == b"Description":
                return value.decode("latin-1")
        pos += 12 + length
    return None


def wav(seconds: float = 1.0, rate: int = 16000, freq: float = 440.0, amplitude: float = 0.3, text: str | None = None) -> bytes:
    """A valid mono 16-bit PCM WAV with a sine tone (and `text` in a LIST/INFO ICMT chunk)."""
    n = int(seconds * rate)
    step = 2 * math.pi * freq / rate
    peak = amplitude * 32767
    frames = array("h", (int(peak * math.sin(step * i)) for i in range(n)))
    return pcm_wav(frames.tobytes(), rate, text=text)


def pcm_wav(pcm: bytes, rate: int, channels: int = 1, text: str | None = None) -> bytes:
    """A WAV around little-endian 16-bit PCM samples (Gemini's TTS answers raw PCM, for one)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    data = buf.getvalue()
    if text:
        data = _with_info(data, text)
    return data


def _with_info(data: bytes, text: str) -> bytes:
    body = text.encode("utf-8") + b"\0"
    if len(body) % 2:
        body += b"\0"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(body)) + body
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    out = bytearray(data + chunk)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def wav_text(data: bytes) -> str | None:
    """The LIST/INFO ICMT text of a WAV (None when it has none)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == b"LIST" and data[pos + 8:pos + 12] == b"INFO":
            sub, end = pos + 12, pos + 8 + size
            while sub + 8 <= end:
                skind, ssize = data[sub:sub + 4], struct.unpack("<I", data[sub + 4:sub + 8])[0]
                if skind == b"ICMT":
                    return data[sub + 8:sub + 8 + ssize].rstrip(b"\0").decode("utf-8", "replace")
                sub += 8 + ssize + (ssize % 2)
        pos += 8 + size + (size % 2)
    return None


CHARS_PER_SECOND = 14.0


def speech_wav(text: str, rate: int = 8000) -> bytes:
    """Mock "speech": one tone per word (pitch from the word, length from its letters), a short
    pause between words, about `CHARS_PER_SECOND`; the text is embedded (see `wav_text`)."""
    out = array("h")
    for word in text.split() or [""]:
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        freq = 220 + digest[0] * 2
        n = int(rate * max(1, len(word) + 1) / CHARS_PER_SECOND)
        step = 2 * math.pi * freq / rate
        fade = max(1, n // 8)
        out.extend(int(9000 * min(1.0, i / fade, (n - i) / fade) * math.sin(step * i)) for i in range(n))
        out.extend([0] * int(rate * 0.5 / CHARS_PER_SECOND))
    return pcm_wav(out.tobytes(), rate, text=text)


def wav_duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def pdf(text: str = "Hello from the LLM Gateway") -> bytes:
    """A minimal valid one-page PDF showing `text`."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 50 750 Td ({safe}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


# ---------------------------------------------------------------- JPEG (baseline, grayscale, DC only)

_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)  # ITU T.81 Annex K.3, luminance DC
_DC_VALS = tuple(range(12))
_AC_BITS = (0, 1) + (0,) * 14  # one code, '00': end of block (every AC coefficient is zero)
_AC_VALS = (0x00,)
_DC_QUANT = 8  # a flat block of value v has DC = 8 * (v - 128): quantized by 8, DC is v - 128


def _huffman_codes(bits: tuple[int, ...], vals: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, 1):
        for _ in range(count):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALS)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def jpeg_gray(blocks: list[list[int]]) -> bytes:
    """A baseline JPEG: `blocks[row][col]` is the gray level (0-255) of each flat 8x8 block."""
    height, width = len(blocks) * 8, len(blocks[0]) * 8
    acc = 0
    nbits = 0
    out = bytearray()

    def put(value: int, length: int) -> None:
        nonlocal acc, nbits
        acc = (acc << length) | value
        nbits += length
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)  # byte stuffing
        acc &= (1 << nbits) - 1

    prev = 0
    for row in blocks:
        for level in row:
            dc = max(0, min(255, int(level))) - 128
            diff, prev = dc - prev, dc
            size = abs(diff).bit_length()
            put(*_DC_CODES[size])
            if size:
                put(diff if diff > 0 else diff + (1 << size) - 1, size)
            put(0, 2)  # EOB
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)  # pad with 1-bits
    quant = bytes([0]) + bytes([_DC_QUANT]) + bytes([16]) * 63
    dht = (bytes([0x00]) + bytes(_DC_BITS) + bytes(_DC_VALS) + bytes([0x10]) + bytes(_AC_BITS) + bytes(_AC_VALS))
    return b"".join([
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        _segment(0xDB, quant),
        _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])),
        _segment(0xC4, dht),
        _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0])),
        bytes(out),
        b"\xff\xd9",
    ])


# ---------------------------------------------------------------- MP4 (ISO-BMFF, one Motion-JPEG track)


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _descriptor(tag: int, body: bytes) -> bytes:
    n = len(body)
    size = bytes([0x80 | ((n >> 21) & 0x7F), 0x80 | ((n >> 14) & 0x7F), 0x80 | ((n >> 7) & 0x7F), n & 0x7F])
    return bytes([tag]) + size + body


def mp4_frames(seconds: float = 1.0, fps: int = 8, width: int = 64, height: int = 48, seed: int = 0) -> list[bytes]:
    cols, rows = max(1, width // 8), max(1, height // 8)
    n = max(1, round(seconds * fps))
    background = 60 + seed % 80
    frames = []
    for i in range(n):
        x = (i + seed) % cols
        y = (i // cols + seed) % rows
        frames.append(jpeg_gray([[235 if (c == x and r == y) else background + (c + r) * 3 for c in range(cols)] for r in range(rows)]))
    return frames


def mp4(seconds: float = 1.0, fps: int = 8, width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small, valid MP4: one Motion-JPEG video track of `round(seconds * fps)` frames."""
    width, height = max(8, width // 8 * 8), max(8, height // 8 * 8)
    frames = mp4_frames(seconds, fps, width, height, seed)
    n = len(frames)
    movie_ms = round(n * 1000 / fps)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    mdat = _box(b"mdat", *frames)
    first_offset = len(ftyp) + 8
    es = _descriptor(0x03, struct.pack(">HB", 1, 0)
                     + _descriptor(0x04, bytes([0x6C, (0x04 << 2) | 1]) + (0).to_bytes(3, "big") + struct.pack(">II", 0, 0))
                     + _descriptor(0x06, bytes([0x02])))
    compressor = b"\x0cMotion JPEG".ljust(32, b"\0")
    mp4v = _box(b"mp4v", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
                struct.pack(">II", 0x00480000, 0x00480000), bytes(4), struct.pack(">H", 1), compressor,
                struct.pack(">Hh", 0x0018, -1), _full(b"esds", 0, 0, es))
    stbl = _box(b"stbl",
                _full(b"stsd", 0, 0, struct.pack(">I", 1), mp4v),
                _full(b"stts", 0, 0, struct.pack(">III", 1, n, 1)),
                _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, n, 1)),
                _full(b"stsz", 0, 0, struct.pack(">II", 0, n), b"".join(struct.pack(">I", len(f)) for f in frames)),
                _full(b"stco", 0, 0, struct.pack(">II", 1, first_offset)))
    minf = _box(b"minf", _full(b"vmhd", 0, 1, bytes(8)),
                _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1))), stbl)
    mdia = _box(b"mdia",
                _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, fps, n, 0x55C4, 0)),
                _full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0"),
                minf)
    tkhd = _full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, movie_ms), bytes(8), struct.pack(">hhhH", 0, 0, 0, 0),
                 _MATRIX, struct.pack(">II", width << 16, height << 16))
    mvhd = _full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, movie_ms), struct.pack(">IH", 0x00010000, 0x0100),
                 bytes(10), _MATRIX, bytes(24), struct.pack(">I", 2))
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))
    return ftyp + mdat + moov


_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl"})


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int, list]]:
    """The box tree: `(type, payload offset, payload size, children)`; ValueError when a size is wrong."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise ValueError(f"truncated box header at {pos}")
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8 or pos + size > end:
            raise ValueError(f"box {kind!r} at {pos} has a bad size {size}")
        children = mp4_boxes(data, pos + 8, pos + size) if kind in _CONTAINERS else []
        out.append((kind.decode("latin-1"), pos + 8, size - 8, children))
        pos += size
    return out


def mp4_duration(data: bytes) -> float | None:
    """Seconds, from `moov/mvhd` (None when the file is not an MP4 this module can read)."""
    try:
        boxes = mp4_boxes(data)
    except ValueError:
        return None
    for kind, off, _size, children in boxes:
        if kind == "moov":
            for ckind, coff, _csize, _ in children:
                if ckind == "mvhd" and data[coff] == 0:
                    timescale, duration = struct.unpack(">II", data[coff + 12:coff + 20])
                    return duration / timescale if timescale else None
    return None
