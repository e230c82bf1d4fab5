"""The mock provider's media are real files: the MP4's box tree and sample tables are consistent
and each frame is a baseline JPEG that decodes (with its own Huffman tables) to the intended
blocks; WAV text round trip; PNG text chunk; media option checks."""

from __future__ import annotations

import struct

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.media import samples
from llm_gateway.media.generation import check_options
from llm_gateway.media.sniff import sniff


def find(tree, path):
    kind, *rest = path
    for k, off, size, children in tree:
        if k == kind:
            return (off, size) if not rest else find(children, rest)
    raise AssertionError(f"no {kind} box")


def decode_dc_jpeg(data: bytes) -> list[list[int]]:
    """A tiny baseline decoder for grayscale JPEGs whose blocks have no AC energy: reads SOF0,
    DQT and DHT from the file and Huffman-decodes the scan."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    pos, tables, quant, scan = 2, {}, None, None
    while pos < len(data) - 2:
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        body = data[pos + 4:pos + 2 + length]
        if marker == 0xFFC0:
            _, height, width, ncomp = struct.unpack(">BHHB", body[:6])
            assert ncomp == 1
        elif marker == 0xFFDB:
            quant = body[1]
        elif marker == 0xFFC4:
            i = 0
            while i < len(body):
                cls_id, bits = body[i], body[i + 1:i + 17]
                vals = body[i + 17:i + 17 + sum(bits)]
                codes, code, k = {}, 0, 0
                for length_, count in enumerate(bits, 1):
                    for _ in range(count):
                        codes[(length_, code)] = vals[k]
                        code += 1
                        k += 1
                    code <<= 1
                tables[cls_id >> 4] = codes
                i += 17 + sum(bits)
        elif marker == 0xFFDA:
            scan = data[pos + 2 + length:-2]
            break
        pos += 2 + length
    stream = scan.replace(b"\xff\x00", b"\xff")
    bits = "".join(f"{b:08b}" for b in stream)
    at = 0

    def symbol(codes):
        nonlocal at
        code = 0
        for length_ in range(1, 17):
            code = (code << 1) | int(bits[at])
            at += 1
            if (length_, code) in codes:
                return codes[(length_, code)]
        raise AssertionError("bad Huffman code")

    prev, rows = 0, []
    for _ in range(height // 8):
        row = []
        for _ in range(width // 8):
            size = symbol(tables[0])
            diff = 0
            if size:
                raw = int(bits[at:at + size], 2)
                at += size
                diff = raw if raw >= 1 << (size - 1) else raw - (1 << size) + 1
            prev += diff
            assert symbol(tables[1]) == 0  # end of block: no AC coefficients
            row.append(prev * quant // 8 + 128)
        rows.append(row)
    return rows


def test_mp4_structure_is_consistent():
    data = samples.mp4(seconds=2, fps=4, width=64, height=48, seed=3)
    assert sniff(data) == "video/mp4" and samples.mp4_duration(data) == 2.0
    tree = samples.mp4_boxes(data)
    assert [b[0] for b in tree] == ["ftyp", "mdat", "moov"]
    assert data[8:12] == b"isom"
    off, _ = find(tree, ["moov", "trak", "mdia", "hdlr"])
    assert data[off + 8:off + 12] == b"vide"
    off, _ = find(tree, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    assert data[off + 12:off + 16] == b"mp4v"
    assert struct.unpack(">HH", data[off + 8 + 8 + 24:off + 8 + 8 + 28]) == (64, 48)
    esds = data.index(b"esds")
    assert b"\x04\x80\x80\x80" in data[esds:esds + 40] and data[data.index(b"\x04\x80\x80\x80", esds) + 5] == 0x6C  # JPEG
    off, _ = find(tree, ["moov", "trak", "mdia", "minf", "stbl", "stsz"])
    _, sample_size, count = struct.unpack(">III", data[off:off + 12])
    sizes = struct.unpack(f">{count}I", data[off + 12:off + 12 + 4 * count])
    assert sample_size == 0 and count == 8
    off, _ = find(tree, ["moov", "trak", "mdia", "minf", "stbl", "stco"])
    chunk_offset = struct.unpack(">I", data[off + 8:off + 12])[0]
    mdat_off, mdat_size = find(tree, ["mdat"])
    assert chunk_offset == mdat_off and sum(sizes) == mdat_size
    frames = samples.mp4_frames(2, 4, 64, 48, 3)
    at = chunk_offset
    for size, frame in zip(sizes, frames):
        assert data[at:at + size] == frame
        at += size


def test_jpeg_frames_decode_to_the_blocks():
    blocks = [[0, 255, 128, 17], [200, 3, 99, 254]]
    assert decode_dc_jpeg(samples.jpeg_gray(blocks)) == blocks
    frame = samples.mp4_frames(1, 1, 64, 48, seed=0)[0]
    decoded = decode_dc_jpeg(frame)
    assert len(decoded) == 6 and len(decoded[0]) == 8 and decoded[0][0] == 235  # the bright square starts top-left


def test_wav_text_round_trip_and_png_text():
    audio = samples.speech_wav("héllo wörld, once more")
    assert sniff(audio) == "audio/wav" and samples.wav_text(audio) == "héllo wörld, once more"
    assert samples.wav_duration(audio) > 1.0
    assert samples.wav_text(samples.wav(0.1)) is None
    png = samples.png(20, 10, text="a prompt")
    assert samples.png_size(png) == (20, 10) and samples.png_text(png) == "a prompt"


@pytest.mark.parametrize("options,modality,ok", [
    ({"n": 2, "size": "512x512", "seed": 1, "format": "png"}, "image", True),
    ({"voice": "alloy", "format": "mp3", "speed": 1.5}, "speech", True),
    ({"language": "en", "temperature": 0.2}, "transcription", True),
    ({"duration": 8, "aspect_ratio": "16:9"}, "video", True),
    ({"n": 0}, "image", False),
    ({"format": "gif"}, "image", False),
    ({"format": "png"}, "speech", False),
    ({"speed": 9}, "speech", False),
    ({"duration": 600}, "video", False),
    ({"voice": "x"}, "image", False),
    ({"nope": 1}, "video", False),
])
def test_media_options(options, modality, ok):
    if ok:
        check_options(options, modality, "m")
    else:
        with pytest.raises(GatewayError) as info:
            check_options(options, modality, "m")
        assert info.value.code == "validation_error" and info.value.errors[0]["path"].startswith("media.")
