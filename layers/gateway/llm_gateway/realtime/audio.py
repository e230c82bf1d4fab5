"""Audio formats of realtime sessions: checks, conversions and chunking (pure Python, no codecs).

| format      | what the bytes are                                              | rate        |
| ----------- | --------------------------------------------------------------- | ----------- |
| `pcm16`     | raw little-endian signed 16-bit mono samples (OpenAI's default) | 24 000 Hz   |
| `g711_ulaw` | G.711 µ-law, one byte a sample                                  | 8 000 Hz    |
| `g711_alaw` | G.711 A-law, one byte a sample                                  | 8 000 Hz    |
| `wav`       | a RIFF/WAVE file (16-bit PCM, any rate, mono or stereo) — a gateway extension | the file's |

Conversions go through 16-bit PCM: `to_pcm16()` decodes any input format (`pcm16_at()` also
resamples it to the rate a provider wants), `PcmEncoder` turns a
PCM stream into an output format (resampling by integer up/down factors with array slicing:
zero-order hold, enough for speech to and from the gateway's providers), `WavStreamReader` takes
the PCM out of a WAV that arrives in pieces (a TTS stream).
"""

from __future__ import annotations

import io
import struct
import sys
import wave
from array import array
from fractions import Fraction

FORMATS: dict[str, int | None] = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000, "wav": None}
PROVIDER_FORMATS = frozenset({"pcm16", "g711_ulaw", "g711_alaw"})  # what OpenAI's realtime socket speaks
_BIG = sys.byteorder != "little"


class AudioFormatError(ValueError):
    """The bytes are not audio in the declared format."""


def rate_of(fmt: str) -> int | None:
    return FORMATS[fmt]


def seconds_of(nbytes: int, fmt: str, rate: int | None = None) -> float:
    """Duration of `nbytes` of audio in `fmt` (a WAV's own rate when given)."""
    if fmt == "pcm16":
        return nbytes / 2 / 24000
    if fmt in ("g711_ulaw", "g711_alaw"):
        return nbytes / 8000
    return nbytes / 2 / (rate or 24000)


def sniff_container(head: bytes) -> str | None:
    """A container/codec signature at the start of raw audio: what a pcm16/g711 buffer must not be."""
    if head[:4] == b"RIFF":
        return "a WAV (RIFF) file"
    if head[:4] == b"OggS":
        return "an Ogg file"
    if head[:4] == b"fLaC":
        return "a FLAC file"
    if head[:3] == b"ID3":
        return "an MP3 file"
    if head[4:8] == b"ftyp":
        return "an MP4/M4A file"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a WebM/Matroska file"
    return None


# ---------------------------------------------------------------- G.711 (ITU-T G.711 tables)

def _ulaw_to_linear(u: int) -> int:
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if (u & 0x80) else (t - 0x84)


def _alaw_to_linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if (a & 0x80) else -t


def _linear_to_ulaw(s: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if s < 0 else 0
    if s < 0:
        s = -s
    s = min(s, clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not (s & mask):
        exp -= 1
        mask >>= 1
    mant = (s >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def _linear_to_alaw(s: int) -> int:
    sign = 0x80 if s >= 0 else 0
    if s < 0:
        s = -s - 1
    s = min(s, 32767) >> 3
    if s < 32:
        out = s >> 1
    else:
        seg = 1
        v = s >> 5
        while v > 1 and seg < 7:
            v >>= 1
            seg += 1
        out = (seg << 4) | ((s >> seg) & 0x0F)
    return (out | sign) ^ 0x55


_ULAW_DEC = array("h", (_ulaw_to_linear(i) for i in range(256)))
_ALAW_DEC = array("h", (_alaw_to_linear(i) for i in range(256)))
# encoders indexed by the 16-bit sample + 32768
_ULAW_ENC: bytes | None = None
_ALAW_ENC: bytes | None = None


def _enc_table(alaw: bool) -> bytes:
    global _ULAW_ENC, _ALAW_ENC
    if alaw:
        if _ALAW_ENC is None:
            _ALAW_ENC = bytes(_linear_to_alaw(s) for s in range(-32768, 32768))
        return _ALAW_ENC
    if _ULAW_ENC is None:
        _ULAW_ENC = bytes(_linear_to_ulaw(s) for s in range(-32768, 32768))
    return _ULAW_ENC


def _samples(pcm: bytes) -> array:
    a = array("h")
    a.frombytes(pcm[: len(pcm) - (len(pcm) % 2)])
    if _BIG:
        a.byteswap()
    return a


def _pcm(a: array) -> bytes:
    if _BIG:
        a = array("h", a)
        a.byteswap()
    return a.tobytes()


def g711_decode(data: bytes, alaw: bool = False) -> bytes:
    table = _ALAW_DEC if alaw else _ULAW_DEC
    return _pcm(array("h", (table[b] for b in data)))


def g711_encode(pcm: bytes, alaw: bool = False) -> bytes:
    table = _enc_table(alaw)
    return bytes(table[s + 32768] for s in _samples(pcm))


# ---------------------------------------------------------------- WAV

def wav_pcm(data: bytes) -> tuple[bytes, int]:
    """`(mono 16-bit PCM, rate)` of a WAV file; AudioFormatError when it is not one we can read."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("the audio is not a WAV file (no RIFF/WAVE header)")
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, struct.error) as exc:
        raise AudioFormatError(f"the WAV file is malformed ({exc})") from None
    if width != 2:
        raise AudioFormatError(f"the WAV file has {width * 8}-bit samples; send 16-bit PCM")
    if rate <= 0:
        raise AudioFormatError("the WAV file has no sample rate")
    if channels == 2:
        s = _samples(frames)
        frames = _pcm(array("h", ((a + b) // 2 for a, b in zip(s[0::2], s[1::2]))))
    elif channels != 1:
        raise AudioFormatError(f"the WAV file has {channels} channels; send mono or stereo")
    return frames, rate


def wav_header(rate: int, data_bytes: int = 0xFFFFFFFF - 36) -> bytes:
    """A 44-byte mono 16-bit WAV header; the default sizes say "until the stream ends"."""
    riff = min(0xFFFFFFFF, data_bytes + 36)
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def to_pcm16(data: bytes, fmt: str) -> tuple[bytes, int]:
    """Decode input audio in `fmt` to `(mono 16-bit PCM, rate)`."""
    if fmt == "pcm16":
        if len(data) % 2:
            raise AudioFormatError("pcm16 audio must be whole 16-bit samples (an even number of bytes)")
        return data, 24000
    if fmt == "g711_ulaw":
        return g711_decode(data), 8000
    if fmt == "g711_alaw":
        return g711_decode(data, alaw=True), 8000
    if fmt == "wav":
        return wav_pcm(data)
    raise AudioFormatError(f"unknown audio format {fmt!r}")


def resample(pcm: bytes, src: int, dst: int) -> bytes:
    if src == dst or not pcm:
        return pcm
    r = Resampler(src, dst)
    return r.feed(pcm)


def pcm16_at(data: bytes, fmt: str, rate: int) -> bytes:
    """Input audio in `fmt` as mono 16-bit PCM at `rate`: what a provider socket with a fixed input
    rate takes (Gemini Live: 16 kHz)."""
    pcm, src = to_pcm16(data, fmt)
    return resample(pcm, src, rate)


class Resampler:
    """Rational up/down sampling of a 16-bit PCM stream (zero-order hold, decimation), continuous
    across `feed()` calls."""

    def __init__(self, src: int, dst: int) -> None:
        ratio = Fraction(dst, src).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.phase = 0  # index into the next upsampled block where the next output sample is
        self.carry = b""

    def feed(self, pcm: bytes) -> bytes:
        if self.carry:
            pcm = self.carry + pcm
            self.carry = b""
        if len(pcm) % 2:
            pcm, self.carry = pcm[:-1], pcm[-1:]
        if self.up == 1 and self.down == 1:
            return pcm
        src = _samples(pcm)
        n = len(src)
        if self.up > 1:
            up = array("h", bytes(2 * n * self.up))
            for j in range(self.up):
                up[j::self.up] = src
        else:
            up = src
        out = up[self.phase::self.down] if self.down > 1 else up
        if self.down > 1:
            total = len(up)
            self.phase = (self.phase - total) % self.down
        return _pcm(out)


class PcmEncoder:
    """A stream of mono 16-bit PCM at `rate` → audio bytes in an output format."""

    def __init__(self, fmt: str, rate: int) -> None:
        self.fmt = fmt
        target = FORMATS.get(fmt) or rate  # wav keeps the source rate
        self.rate = target
        self.resampler = Resampler(rate, target) if target != rate else None
        self.header_sent = fmt != "wav"

    def feed(self, pcm: bytes) -> bytes:
        if self.resampler is not None:
            pcm = self.resampler.feed(pcm)
        if self.fmt == "g711_ulaw":
            return g711_encode(pcm)
        if self.fmt == "g711_alaw":
            return g711_encode(pcm, alaw=True)
        if not self.header_sent:
            self.header_sent = True
            return wav_header(self.rate) + pcm
        return pcm


class WavStreamReader:
    """The PCM samples of a WAV that arrives in pieces. `feed()` returns the PCM bytes available so
    far (after the header); `rate`/`channels` are known once the `fmt ` chunk was read. A data size
    of 0 or 0xFFFFFFFF means "until the stream ends" (streamed WAVs)."""

    def __init__(self) -> None:
        self.buf = b""
        self.rate: int | None = None
        self.channels = 1
        self.width = 2
        self.remaining: int | None = None  # data bytes still expected; None before the data chunk
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if self.remaining is not None:
            return self._take(data)
        self.buf += data
        if len(self.buf) >= 12 and (self.buf[:4] != b"RIFF" or self.buf[8:12] != b"WAVE"):
            raise AudioFormatError("the speech is not a WAV file")
        pos = 12
        while len(self.buf) >= pos + 8:
            kind, size = self.buf[pos:pos + 4], struct.unpack("<I", self.buf[pos + 4:pos + 8])[0]
            if kind == b"data":
                rest = self.buf[pos + 8:]
                self.buf = b""
                self.remaining = -1 if size in (0, 0xFFFFFFFF) else size
                if self.rate is None:
                    raise AudioFormatError("the WAV has no fmt chunk before its data")
                return self._take(rest)
            if len(self.buf) < pos + 8 + size:
                return b""
            if kind == b"fmt ":
                _tag, self.channels, self.rate, _br, _align, bits = struct.unpack("<HHIIHH", self.buf[pos + 8:pos + 24])
                self.width = bits // 8
                if self.width != 2:
                    raise AudioFormatError(f"the WAV has {bits}-bit samples; 16-bit PCM is needed")
            pos += 8 + size + (size % 2)
        return b""

    def _take(self, data: bytes) -> bytes:
        if self.remaining is not None and self.remaining >= 0:
            data = data[: self.remaining]
            self.remaining -= len(data)
            if self.remaining == 0:
                self.done = True
        if self.channels == 2:
            data = self.buf + data
            cut = len(data) - len(data) % 4
            data, self.buf = data[:cut], data[cut:]
            s = _samples(data)
            return _pcm(array("h", ((a + b) // 2 for a, b in zip(s[0::2], s[1::2]))))
        return data
