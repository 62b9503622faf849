"""Read the quantizer of a lossy WebP from its VP8 frame header, without decoding pixels.

The WebP counterpart of reading a JPEG's quantization tables: the key-frame header of the VP8
bitstream (RFC 6386, sections 9.2-9.6 and 19.2) carries the AC quantizer index of the luma plane
(0 = finest, 127 = coarsest), per segment when segmentation is on (libwebp uses four segments by
default). The header is coded with VP8's boolean entropy coder (RFC 6386, section 7), so a tiny
bool decoder reads just the fields in front of the quantizer.

The mean index maps back to the ``-q`` quality of libwebp's encoder by inverting its
``QualityToCompression`` rule (src/enc/quant_enc.c): ``c = (q < 0.75 ? 2q/3 : 2q - 1) ** (1/3)``
and ``index = 127 * (1 - c)``.
"""

from __future__ import annotations

import struct


class _BoolDecoder:
    """RFC 6386 section 7.3 boolean decoder."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 2:
            raise ValueError("VP8 partition too short")
        self._data = data
        self._pos = 2
        self._value = (data[0] << 8) | data[1]
        self._range = 255
        self._bit_count = 0

    def bool(self, probability: int = 128) -> int:
        split = 1 + (((self._range - 1) * probability) >> 8)
        big_split = split << 8
        if self._value >= big_split:
            bit = 1
            self._range -= split
            self._value -= big_split
        else:
            bit = 0
            self._range = split
        while self._range < 128:
            self._value <<= 1
            self._range <<= 1
            self._bit_count += 1
            if self._bit_count == 8:
                self._bit_count = 0
                if self._pos < len(self._data):
                    self._value |= self._data[self._pos]
                self._pos += 1
        return bit

    def literal(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            value = (value << 1) | self.bool()
        return value

    def signed(self, bits: int) -> int:
        magnitude = self.literal(bits)
        return -magnitude if self.bool() else magnitude

    def optional_signed(self, bits: int) -> int:
        return self.signed(bits) if self.bool() else 0


def _vp8_chunk(data: bytes) -> bytes | None:
    """Payload of the first 'VP8 ' (lossy) chunk of a RIFF/WEBP file, or None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    offset = 12
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        if fourcc == b"VP8 ":
            return data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    return None


def vp8_quantizer(data: bytes) -> float | None:
    """Mean luma AC quantizer index (0-127) of a lossy WebP; None if lossless or unreadable."""
    frame = _vp8_chunk(data)
    if frame is None or len(frame) < 12 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    # The frame tag's top 19 bits give the first partition's size. Past its end the bool decoder
    # reads zero padding, so a file cut inside the header gave a made-up quantizer.
    if len(frame) < 10 + (int.from_bytes(frame[0:3], "little") >> 5):
        return None
    try:
        header = _BoolDecoder(frame[10:])
        header.literal(2)  # colour space, clamping type
        segment_quants = [0, 0, 0, 0]
        absolute = False
        segmentation = header.bool()
        if segmentation:
            update_map = header.bool()
            if header.bool():  # update segment feature data
                absolute = bool(header.bool())
                segment_quants = [header.optional_signed(7) for _ in range(4)]
                for _ in range(4):
                    header.optional_signed(6)  # loop filter levels
            if update_map:
                for _ in range(3):
                    if header.bool():
                        header.literal(8)
        header.literal(1 + 6 + 3)  # filter type, level, sharpness
        if header.bool() and header.bool():  # loop-filter deltas enabled and updated
            for _ in range(8):
                header.optional_signed(6)
        header.literal(2)  # log2 of the number of DCT partitions
        base = header.literal(7)
    except (ValueError, IndexError):
        return None
    if not segmentation:
        return float(base)
    indices = [q if absolute else base + q for q in segment_quants]
    return sum(min(max(q, 0), 127) for q in indices) / 4.0


def webp_quality(quantizer: float) -> float:
    """libwebp ``-q`` quality (0-100) equivalent to a mean quantizer index."""
    compression = 1.0 - min(max(quantizer, 0.0), 127.0) / 127.0
    linear = compression**3
    quality = linear * 1.5 if linear < 0.5 else (linear + 1.0) / 2.0
    return 100.0 * quality
