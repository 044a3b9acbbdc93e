"""Fuzz cases: pydicom's test files and a small demo series, corrupted the ways real media and attackers do.

Case `i` of seed `s` depends only on (s, i) (and this module's mutators: adding one changes
which case an id names), so a failing case can be made again from its id, whatever `n` the run had.
"""

from __future__ import annotations

import random
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import dicom_bytes as db

# pydicom's own test files (pydicom.data), by name: images of every transfer syntax, plus a few non-images
SEED_NAMES = (
    "CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
    "MR_small_implicit.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm",
    "MR_truncated.dcm", "ExplVR_BigEnd.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "no_meta.dcm",
    "no_meta_group_length.dcm", "meta_missing_tsyntax.dcm", "JPEG-lossy.dcm", "JPGExtended.dcm", "JPEG2000.dcm",
    "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm", "GDCMJ2K_TextGBR.dcm", "JPEG2000-embedded-sequence-delimiter.dcm",
    "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm",
    "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_small_odd.dcm", "SC_rgb_small_odd_jpeg.dcm", "SC_rgb_jls_lossy_line.dcm", "SC_ybr_full_422_uncompressed.dcm",
    "SC_jpeg_no_color_transform.dcm", "examples_palette.dcm", "examples_overlay.dcm", "examples_ybr_color.dcm",
    "examples_jpeg2k.dcm", "image_dfl.dcm", "liver_1frame.dcm", "rtdose.dcm", "rtdose_1frame.dcm", "rtdose_rle.dcm",
    "rtdose_expb.dcm", "emri_small.dcm", "emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
    "OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "US1_J2KR.dcm", "US1_UNCR.dcm", "badVR.dcm", "UN_sequence.dcm", "priv_SQ.dcm",
    "nested_priv_SQ.dcm", "empty_charset_LEI.dcm", "test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm", "bad_sequence.dcm",
)
DEMO_SLICES, DEMO_SIZE = 4, 32
GENERATION = 2  # bumped whenever a change to the mutators changes what a case id makes (kept cases name it)

ROWS, COLUMNS, FRAMES = 0x00280010, 0x00280011, 0x00280008
SAMPLES, PHOTOMETRIC, PLANAR = 0x00280002, 0x00280004, 0x00280006
BITS_ALLOCATED, BITS_STORED, HIGH_BIT, PIXEL_REP = 0x00280100, 0x00280101, 0x00280102, 0x00280103
SPACING, POSITION, ORIENTATION, THICKNESS = 0x00280030, 0x00200032, 0x00200037, 0x00180050
SLOPE, INTERCEPT, CENTER, WIDTH = 0x00281053, 0x00281052, 0x00281050, 0x00281051
SOP_INSTANCE = 0x00080018
US_TAGS = (ROWS, COLUMNS, SAMPLES, PLANAR, BITS_ALLOCATED, BITS_STORED, HIGH_BIT, PIXEL_REP)
HOSTILE_INTS = (0, 1, 2, 3, 7, 8, 12, 16, 17, 24, 31, 32, 33, 40, 64, 255, 2000, 28441, 32767, 32768, 65535,
                65536, 10**8, 2**31 - 1, 2**32 - 1, -1, -5, -(2**31))
HOSTILE_FRAMES = (b"0", b"-1", b"-5", b"2", b"3", b"1000", b"100000000", b"2147483647", b"-2147483648",
                  b"99999999999", b"1e8", b"abc", b"", b"1\\2", b" 7")
HOSTILE_DS = (b"1e308\\1e308", b"NaN\\NaN", b"inf\\1", b"0\\0", b"-1\\-1", b"1e-308\\1e-308", b"abc\\1", b"1",
              b"1e308", b"0.5\\0.5\\0.5", b"-0\\1e300")
SYNTAXES = (db.IMPLICIT_LE, db.EXPLICIT_LE, db.EXPLICIT_BE, db.DEFLATED, "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.100", "1.2.3.4", "garbage\\x", "")
WRONG_VRS = (b"SQ", b"UN", b"OB", b"OW", b"US", b"UL", b"SS", b"FD", b"FL", b"DS", b"IS", b"AT", b"UI", b"LO", b"XX")


@dataclass
class Case:
    case_id: str
    mutator: str
    seed_name: str
    files: dict[str, bytes] = field(default_factory=dict)


class Seeds:
    """The unmodified inputs, loaded once: pydicom files by name and the demo series."""

    def __init__(self) -> None:
        from pydicom.data import get_testdata_file

        self.files: dict[str, bytes] = {}
        for name in SEED_NAMES:
            path = get_testdata_file(name, download=False)
            if path is not None:
                self.files[name] = Path(path).read_bytes()
        from workstation.demo import write_demo_study

        with tempfile.TemporaryDirectory(prefix="ws-fuzz-demo-") as tmp:
            study = write_demo_study(Path(tmp), seed=3, slices=DEMO_SLICES, size=DEMO_SIZE)
            self.demo = [Path(f).read_bytes() for f in study.files]
        self.files["demo-slice.dcm"] = self.demo[0]
        self._layouts: dict[str, db.Layout] = {}
        self._bomb: bytes | None = None
        self.names = sorted(self.files)
        self.encapsulated = [n for n in self.names if db.fragments(self.layout(n))]

    def bomb_body(self) -> bytes:
        """A raw deflate stream of a 300 MB private element (made once; ~300 kB)."""
        if self._bomb is None:
            squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            size = 300 << 20
            parts = [squeeze.compress(struct.pack("<HH2s2xI", 0x0009, 0x1010, b"OB", size))]
            zeros = bytes(1 << 20)
            parts += [squeeze.compress(zeros) for _ in range(size >> 20)]
            self._bomb = b"".join(parts) + squeeze.flush()
        return self._bomb

    def layout(self, name: str) -> db.Layout:
        if name not in self._layouts:
            self._layouts[name] = db.layout(self.files[name])
        return self._layouts[name]


def generate(seeds: Seeds, n: int, seed: int) -> list[Case]:
    return [make_case(seeds, seed, i) for i in range(n)]


def _single(case: Case, seed_name: str, data: bytes) -> None:
    case.seed_name = seed_name
    case.files = {"case.dcm": data}


def _pick(rng: random.Random, seeds: Seeds, walkable: bool = False) -> tuple[str, db.Layout]:
    for _ in range(20):
        name = rng.choice(seeds.names)
        lay = seeds.layout(name)
        if not walkable or lay.elements:
            return name, lay
    return "demo-slice.dcm", seeds.layout("demo-slice.dcm")


# ----------------------------------------------------------------- byte-level mutators

def flip(rng, seeds, case):
    name, lay = _pick(rng, seeds)
    data = bytearray(lay.data)
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        head = rng.random() < 0.7 and len(data) > 0
        pos = rng.randrange(min(len(data), 2048) if head else len(data))
        data[pos] = rng.randrange(256) if rng.random() < 0.5 else data[pos] ^ (1 << rng.randrange(8))
    _single(case, name, bytes(data))


def truncate(rng, seeds, case):
    name, lay = _pick(rng, seeds)
    cut = rng.choice((rng.randrange(len(lay.data)), len(lay.data) - rng.randrange(1, 64), rng.randrange(140)))
    _single(case, name, lay.data[:max(cut, 0)])


def insert_delete(rng, seeds, case):
    name, lay = _pick(rng, seeds)
    pos = rng.randrange(min(len(lay.data), 4096))
    if rng.random() < 0.5:
        data = lay.data[:pos] + bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 3, 4, 8)))) + lay.data[pos:]
    else:
        data = lay.data[:pos] + lay.data[pos + rng.choice((1, 2, 4, 6, 8)):]
    _single(case, name, data)


def bad_length(rng, seeds, case):
    name, lay = _pick(rng, seeds, walkable=True)
    element = rng.choice(lay.elements + lay.meta)
    offset, size = element.length_field
    order = "<" if element in lay.meta else lay.order
    big = (1 << 8 * size) - 1
    value = rng.choice((big, big - 1, big >> 1, big - 7, rng.randrange(big), len(lay.data), len(lay.data) * 2 + 1,
                        0, 1, 3, element.length + 1 if element.length < big else 0, max(element.length - 1, 0)))
    fmt = f"{order}{'H' if size == 2 else 'I'}"
    _single(case, name, lay.data[:offset] + struct.pack(fmt, value & big) + lay.data[offset + size:])


def wrong_vr(rng, seeds, case):
    name, lay = _pick(rng, seeds, walkable=True)
    explicit = [e for e in lay.elements if e.vr is not None]
    if not explicit:
        return absurd_value(rng, seeds, case)
    element = rng.choice(explicit)
    vr = rng.choice(WRONG_VRS)
    if (vr in db.LONG_VRS) == (element.vr in db.LONG_VRS):  # same header size: swap in place
        data = lay.data[:element.start + 4] + vr + lay.data[element.start + 6:]
    else:  # re-encode the value under the new VR
        value = lay.data[element.value:element.end] if element.length != db.UNDEFINED else b""
        data = lay.data[:element.start] + db.encode(element.tag, vr, value, False, lay.little) + lay.data[element.end:]
    _single(case, name, data)


# ----------------------------------------------------------------- header values

def _int_value(rng: random.Random, lay: db.Layout, tag: int) -> tuple[bytes, bytes]:
    """(VR, value) holding a hostile integer: US when it fits, else UL/SL or a multi-valued US."""
    number = rng.choice(HOSTILE_INTS)
    order = lay.order
    if 0 <= number <= 0xFFFF:
        return b"US", struct.pack(f"{order}H", number)
    if number < 0:
        return (b"SS", struct.pack(f"{order}h", max(number, -32768))) if rng.random() < 0.5 else (b"SL", struct.pack(f"{order}i", number))
    return b"UL", struct.pack(f"{order}I", number & 0xFFFFFFFF)


def absurd_value(rng, seeds, case):
    name, lay = _pick(rng, seeds, walkable=True)
    choice = rng.random()
    if choice < 0.3:
        data = db.put(lay, FRAMES, b"IS", rng.choice(HOSTILE_FRAMES))
    elif choice < 0.4:
        data = db.put(lay, PHOTOMETRIC, b"CS", rng.choice((b"PALETTE COLOR", b"RGB", b"YBR_FULL_422", b"MONOCHROME1",
                                                            b"YBR_ICT", b"", b"XYZ", b"YBR_FULL")))
    else:
        tag = rng.choice(US_TAGS)
        vr, value = _int_value(rng, lay, tag)
        data = db.put(lay, tag, vr, value)
        if rng.random() < 0.3:  # a consistent lie: both dimensions
            other = COLUMNS if tag == ROWS else ROWS
            data = db.put(db.layout(data), other, vr, value) if tag in (ROWS, COLUMNS) else data
    _single(case, name, data)


def geometry(rng, seeds, case):
    name, lay = _pick(rng, seeds, walkable=True)
    data = lay.data
    for _ in range(rng.randint(1, 3)):
        tag = rng.choice((SPACING, SPACING, POSITION, ORIENTATION, THICKNESS, SLOPE, INTERCEPT, CENTER, WIDTH))
        value = rng.choice(HOSTILE_DS)
        if tag == POSITION:
            value = rng.choice((b"1e308\\1e308\\1e308", b"NaN\\0\\0", b"0\\0", b"inf\\-inf\\0"))
        elif tag == ORIENTATION:
            value = rng.choice((b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0", b"NaN\\0\\0\\0\\1\\0", b"1e308\\0\\0\\0\\1e308\\0"))
        data = db.put(db.layout(data), tag, b"DS", value)
    _single(case, name, data)


def transfer_syntax(rng, seeds, case):
    name, lay = _pick(rng, seeds)
    _single(case, name, db.with_transfer_syntax(lay, rng.choice(SYNTAXES)))


def lut(rng, seeds, case):
    """Palette and modality LUTs: missing data, wrong VRs, descriptors that lie."""
    name = "examples_palette.dcm" if rng.random() < 0.6 and "examples_palette.dcm" in seeds.files else _pick(rng, seeds, True)[0]
    lay = seeds.layout(name)
    order = lay.order
    data = lay.data
    tags = (0x00281101, 0x00281102, 0x00281103, 0x00281201, 0x00281202, 0x00281203)
    for _ in range(rng.randint(1, 3)):
        tag = rng.choice(tags)
        kind = rng.random()
        if kind < 0.3:
            data = db.drop(db.layout(data), tag)
        elif tag <= 0x00281103:  # descriptor: entries, first value, bits
            entries = rng.choice((0, 1, 256, 65535, 4096, 3))
            bits = rng.choice((8, 16, 0, 32, 1, 24))
            vr = rng.choice((b"US", b"SS", b"OW", b"UL", b"DS"))
            value = struct.pack(f"{order}3H", entries, rng.choice((0, 65535, 100)), bits) if vr != b"DS" else b"256\\0\\16"
            data = db.put(db.layout(data), tag, vr, value)
        else:
            vr = rng.choice((b"OW", b"OB", b"US", b"LO", b"SQ", b"DS"))
            size = rng.choice((0, 1, 2, 10, 512, 513))
            data = db.put(db.layout(data), tag, vr, bytes(rng.randrange(256) for _ in range(size)))
    if rng.random() < 0.3:
        data = db.put(db.layout(data), PHOTOMETRIC, b"CS", b"PALETTE COLOR")
    if rng.random() < 0.2:  # a modality LUT sequence with a broken item
        item = db.encode(0x00283002, b"US", struct.pack(f"{order}3H", rng.choice((0, 4096, 65535)), 0, rng.choice((8, 16, 0))),
                         lay.implicit, lay.little)
        item += db.encode(0x00283006, rng.choice((b"US", b"OW", b"LO")), b"\x01\x02" * rng.choice((0, 1, 10)), lay.implicit, lay.little)
        item_bytes = struct.pack(f"{order}HHI", 0xFFFE, 0xE000, len(item)) + item
        data = db.put(db.layout(data), 0x00283000, b"SQ", item_bytes)
    _single(case, name, data)


def overlay(rng, seeds, case):
    name = "examples_overlay.dcm" if "examples_overlay.dcm" in seeds.files else "demo-slice.dcm"
    lay = seeds.layout(name)
    tag = rng.choice((0x60000010, 0x60000011, 0x60000015, 0x60000100, 0x60000050, 0x60003000, 0x60000051))
    if tag in (0x60000015, 0x60000051):
        data = db.put(lay, tag, b"IS", rng.choice(HOSTILE_FRAMES))
    elif tag == 0x60003000:
        data = db.put(lay, tag, rng.choice((b"OW", b"OB", b"US")), b"\xff" * rng.choice((0, 2, 8, 100)))
    elif tag == 0x60000050:
        data = db.put(lay, tag, b"SS", struct.pack(f"{lay.order}2h", rng.choice((-32768, 0, 32767)), rng.choice((-32768, 1, 32767))))
    else:
        vr, value = _int_value(rng, lay, tag)
        data = db.put(lay, tag, vr, value)
    _single(case, name, data)


# ----------------------------------------------------------------- compressed streams

def codestream(rng, seeds, case):
    name = rng.choice(seeds.encapsulated)
    lay = seeds.layout(name)
    items = db.fragments(lay)
    data = bytearray(lay.data)
    first = items[1] if len(items) > 1 else items[0]
    start, length = first
    stream = bytes(data[start:start + length])
    kind = rng.random()
    if kind < 0.45:
        size_at = _size_field(stream)
        if size_at is None:
            kind = 0.5
        else:
            offset, width = size_at
            big = (1 << 8 * width) - 1
            for part in range(2):
                value = rng.choice((big, big >> 1, 0, 1, 7, 60000, 4097, big))
                struct.pack_into(f">{'H' if width == 2 else 'I'}", data, start + offset + part * width, value)
            if rng.random() < 0.3 and width == 4 and len(stream) > offset + 24:  # J2K: tiny tiles, many of them
                struct.pack_into(">II", data, start + offset + 16, 1, 1)
    if 0.45 <= kind < 0.7:
        for _ in range(rng.choice((1, 4, 16, 64))):
            pos = start + rng.randrange(max(length, 1))
            data[pos] = rng.randrange(256)
    elif 0.7 <= kind < 0.8:  # a segment count / offsets that lie (RLE) or a truncated stream
        if "RLE" in name or "rle" in name:
            struct.pack_into("<I", data, start, rng.choice((0, 15, 16, 2**31, 3)))
            struct.pack_into("<I", data, start + 4, rng.choice((0, 64, 2**31, length + 10)))
        else:
            cut = rng.randrange(length)
            data[start + cut:start + length] = b"\0" * (length - cut)
    elif 0.8 <= kind < 0.9:  # bogus basic offset table
        bot_start, bot_length = items[0]
        table = struct.pack("<4I", 0xFFFFFFF0, 7, 3, 0x7FFFFFFF)
        data = bytearray(bytes(data[:bot_start - 4]) + struct.pack("<I", len(table)) + table + bytes(data[bot_start + bot_length:]))
    elif kind >= 0.9:  # fragments dropped or multiplied
        pixel = lay.find(db.PIXEL_DATA)
        if rng.random() < 0.5:
            body = bytes(data[items[0][0] - 8:items[0][0] + items[0][1]])
        else:
            body = bytes(data[pixel.value:pixel.end - 8]) + bytes(data[items[-1][0] - 8:items[-1][0] + items[-1][1]]) * rng.choice((2, 50))
        data = bytearray(bytes(data[:pixel.value]) + body + struct.pack(f"{lay.order}HHI", 0xFFFE, 0xE0DD, 0) + bytes(data[pixel.end:]))
    _single(case, name, bytes(data))


def forged_size(rng, seeds, case):
    """A frame header and Rows/Columns that agree on a size the stream cannot hold: only a bounded decode helps."""
    name = rng.choice([n for n in seeds.encapsulated if "rle" not in n.lower() and "RLE" not in n])
    lay = seeds.layout(name)
    items = db.fragments(lay)
    start, length = items[1] if len(items) > 1 else items[0]
    data = bytearray(lay.data)
    size_at = _size_field(bytes(data[start:start + length]))
    if size_at is None:
        return codestream(rng, seeds, case)
    offset, width = size_at
    rows, columns = rng.choice((2000, 4000, 8000, 12000)), rng.choice((2000, 4000, 8000, 12000))
    if width == 2:  # JPEG: height, width
        struct.pack_into(">HH", data, start + offset, rows, columns)
    else:  # J2K: width, height (offsets kept at 0), one tile
        struct.pack_into(">IIIIII", data, start + offset, columns, rows, 0, 0, columns, rows)
    lay = db.layout(bytes(data))
    vr, order = b"US", lay.order
    data = db.put(lay, ROWS, vr, struct.pack(f"{order}H", rows))
    _single(case, name, db.put(db.layout(data), COLUMNS, vr, struct.pack(f"{order}H", columns)))


def offset_tables(rng, seeds, case):
    """An Extended Offset Table (and lengths) that lie about where frames are."""
    name = rng.choice(seeds.encapsulated)
    lay = seeds.layout(name)
    count = rng.choice((1, 2, 3, 1000))
    order = lay.order
    offsets = b"".join(struct.pack(f"{order}Q", rng.choice((0, 8, 2**40, 2**63 - 1, 7))) for _ in range(count))
    lengths = b"".join(struct.pack(f"{order}Q", rng.choice((0, 1, 2**40, 2**63 - 1, 100))) for _ in range(count))
    data = db.put(lay, 0x7FE00001, b"OV", offsets)
    _single(case, name, db.put(db.layout(data), 0x7FE00002, b"OV", lengths))


def deflate_bomb(rng, seeds, case):
    """A deflated data set of a few hundred kilobytes that inflates past any sane size."""
    name = "demo-slice.dcm"
    lay = seeds.layout(name)
    case.seed_name = name
    renamed = db.with_transfer_syntax(lay, db.DEFLATED)  # preamble and meta now name deflate; the body follows
    meta_end = len(renamed) - (len(lay.data) - lay.body_start)
    case.files = {"case.dcm": renamed[:meta_end] + seeds.bomb_body()}


def _size_field(stream: bytes) -> tuple[int, int] | None:
    """Offset of (height, width) in a JPEG SOF / JPEG-LS SOF55 (2-byte fields) or (width, height) in a J2K SIZ (4 bytes)."""
    j2k = stream.find(b"\xff\x51")
    if stream[:4] == b"\xff\x4f\xff\x51" or (0 <= j2k < 64 and stream.find(b"\xff\x4f") >= 0):
        return j2k + 6, 4
    for marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xF7, 0xC5, 0xC6, 0xC7):
        at = stream.find(bytes((0xFF, marker)))
        if 0 <= at < 4096:
            return at + 5, 2
    return None


# ----------------------------------------------------------------- sequences and series

def deep_sequence(rng, seeds, case):
    name, lay = _pick(rng, seeds, walkable=True)
    order = lay.order
    depth = rng.choice((64, 200, 1000, 5000, 50000))
    tag = struct.pack(f"{order}HH", 0x0008, 0x1140)
    seq_head = tag + (struct.pack(f"{order}I", db.UNDEFINED) if lay.implicit else b"SQ\0\0" + struct.pack(f"{order}I", db.UNDEFINED))
    item_head = struct.pack(f"{order}HHI", 0xFFFE, 0xE000, db.UNDEFINED)
    style = rng.random()
    if style < 0.5:  # undefined lengths, never closed
        blob = (seq_head + item_head) * depth
    elif style < 0.7:  # closed properly
        blob = (seq_head + item_head) * depth + (struct.pack(f"{order}HHI", 0xFFFE, 0xE00D, 0)
                                                 + struct.pack(f"{order}HHI", 0xFFFE, 0xE0DD, 0)) * depth
    elif style < 0.85:  # defined lengths, nested
        blob = b""
        for _ in range(min(depth, 5000)):
            item = struct.pack(f"{order}HHI", 0xFFFE, 0xE000, len(blob)) + blob
            blob = tag + (struct.pack(f"{order}I", len(item)) if lay.implicit else b"SQ\0\0" + struct.pack(f"{order}I", len(item))) + item
    else:  # many empty items in one sequence
        count = rng.choice((10_000, 100_000, 300_000))
        items = struct.pack(f"{order}HHI", 0xFFFE, 0xE000, 0) * count
        blob = tag + (struct.pack(f"{order}I", len(items)) if lay.implicit else b"SQ\0\0" + struct.pack(f"{order}I", len(items))) + items
    after = next((e for e in lay.elements if e.tag > 0x00081140), None)
    at = after.start if after is not None else len(lay.data)
    _single(case, name, lay.data[:at] + blob + lay.data[at:])


def series(rng, seeds, case):
    """The demo series with one slice broken, two slices sharing a SOP Instance UID, or geometry that lies."""
    case.seed_name = "demo-series"
    files = {f"slice{k}.dcm": data for k, data in enumerate(seeds.demo)}
    kind = rng.random()
    if kind < 0.3:  # same SOP Instance UID, different pixels
        first = db.layout(seeds.demo[0]).find(SOP_INSTANCE)
        uid = seeds.demo[0][first.value:first.end]
        files["slice1.dcm"] = db.put(db.layout(files["slice1.dcm"]), SOP_INSTANCE, b"UI", uid)
    elif kind < 0.5:
        for key in files:
            files[key] = db.put(db.layout(files[key]), SPACING, b"DS", rng.choice(HOSTILE_DS))
    else:
        sub = Case("", "", "")
        inner = rng.choice((flip, truncate, bad_length, absurd_value, geometry, transfer_syntax, wrong_vr))
        seeds_one = _OneSeed(seeds, seeds.demo[2])
        inner(rng, seeds_one, sub)
        files["slice2.dcm"] = sub.files["case.dcm"]
        case.mutator = f"series+{inner.__name__}"
    case.files = files


class _OneSeed:
    """Seeds narrowed to one file, for mutating one slice of the series."""

    def __init__(self, seeds: Seeds, data: bytes) -> None:
        self.files = {"demo-slice.dcm": data}
        self.names = ["demo-slice.dcm"]
        self.encapsulated: list[str] = []
        self._layout = db.layout(data)

    def layout(self, name: str) -> db.Layout:
        return self._layout


MUTATORS = {  # name: (function, weight)
    "flip": (flip, 12), "truncate": (truncate, 7), "insert_delete": (insert_delete, 4), "bad_length": (bad_length, 12),
    "wrong_vr": (wrong_vr, 8), "absurd_value": (absurd_value, 16), "geometry": (geometry, 6),
    "transfer_syntax": (transfer_syntax, 8), "lut": (lut, 5), "overlay": (overlay, 3), "codestream": (codestream, 12),
    "deep_sequence": (deep_sequence, 4), "series": (series, 6), "forged_size": (forged_size, 3),
    "offset_tables": (offset_tables, 2), "deflate_bomb": (deflate_bomb, 1),
}
_WEIGHTED = [name for name, (_, weight) in MUTATORS.items() for _ in range(weight)]


def make_case(seeds: Seeds, seed: int, index: int) -> Case:
    rng = random.Random(f"workstation-fuzz:{seed}:{index}")
    name = rng.choice(_WEIGHTED)
    case = Case(f"s{seed}-{index:05d}", name, "")
    MUTATORS[name][0](rng, seeds, case)
    return case
