"""Journal segments read the way docs/journal.md lays them out, for the
journal tests: each record is u32 magic 'GOSJ', u32 payload length, u32
crc32c, u8 type (1 event, 2 lease), pad, u64 seq_first, u64 seq_last,
f64 t, then the payload. The checksum is not verified here: the C reader
(gos_journal_scan) is what is under test; this only finds records."""
import struct

MAGIC = 0x4a534f47
HEADER = 40
EVENT, LEASE = 1, 2


def records(path):
    """[(offset, type, payload)] of the whole records at the start of a segment."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + HEADER <= len(data):
        magic, n, _crc, typ = struct.unpack_from("<IIIB", data, off)
        if magic != MAGIC or off + HEADER + n > len(data):
            break
        out.append((off, typ, data[off + HEADER:off + HEADER + n]))
        off += HEADER + n
    return out


def event_records(path):
    return [r for r in records(path) if r[1] == EVENT]
