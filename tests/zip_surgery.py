"""Zip surgery for tests: an archive's central directory as data to edit, so that a test can
make a zip that lies (sizes past the end of the file, overlapping members, a huge directory)
where zipfile would only write the truth."""
import struct
import zipfile

_EOCD = struct.Struct("<4s4H2LH")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_FIELDS = ("signature", "create_version", "extract_version", "flag_bits",
                   "compress_type", "time", "date", "crc", "compress_size", "file_size",
                   "name_length", "extra_length", "comment_length", "disk", "internal_attr",
                   "external_attr", "header_offset")


def read_directory(data):
    """(central directory entries, offset of the directory) of a zip without zip64 end
    records (what zipfile writes for small archives). Each entry is a dict of the fixed
    fields plus 'name', 'extra' and 'comment' (bytes)."""
    end = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, size, offset, _ = _EOCD.unpack_from(data, end)
    entries, pos = [], offset
    for _ in range(count):
        entry = dict(zip(_CENTRAL_FIELDS, _CENTRAL.unpack_from(data, pos)))
        pos += _CENTRAL.size
        entry["name"] = data[pos:pos + entry["name_length"]]
        pos += entry["name_length"]
        entry["extra"] = data[pos:pos + entry["extra_length"]]
        pos += entry["extra_length"]
        entry["comment"] = data[pos:pos + entry["comment_length"]]
        pos += entry["comment_length"]
        entries.append(entry)
    return entries, offset


def write_directory(data, entries, offset, cd_size=None, cd_offset=None, count=None):
    """``data`` up to ``offset`` followed by ``entries`` as its central directory and an end
    record (whose size, offset and count may be overridden with lies)."""
    body = bytearray(data[:offset])
    directory = bytearray()
    for entry in entries:
        fields = dict(entry, name_length=len(entry["name"]), extra_length=len(entry["extra"]),
                      comment_length=len(entry["comment"]))
        directory += _CENTRAL.pack(*(fields[f] for f in _CENTRAL_FIELDS))
        directory += entry["name"] + entry["extra"] + entry["comment"]
    n = len(entries) if count is None else count
    body += directory
    body += _EOCD.pack(b"PK\x05\x06", 0, 0, n, n,
                       len(directory) if cd_size is None else cd_size,
                       offset if cd_offset is None else cd_offset, 0)
    return bytes(body)


def zip64_extra(file_size, compress_size):
    """A zip64 extra field declaring both sizes (the fixed fields then hold 0xFFFFFFFF)."""
    return struct.pack("<HHQQ", 1, 16, file_size, compress_size)


def patch_member(data, name, **fields):
    """``data`` with the central directory entry of member ``name`` changed."""
    entries, offset = read_directory(data)
    for entry in entries:
        if entry["name"] == name.encode():
            entry.update(fields)
    return write_directory(data, entries, offset)


def rewrite(path, out, replace=None, deflate=(), extra=None):
    """Copy the archive ``path`` to ``out`` (stored members), replacing member contents from
    ``replace`` (name -> bytes), deflating the members named in ``deflate``, appending
    ``extra`` (name -> bytes)."""
    replace, extra = replace or {}, extra or {}
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            zout.writestr(name, replace.get(name, zin.read(name)), compress_type=method)
        for name, content in extra.items():
            zout.writestr(name, content)
    return out
