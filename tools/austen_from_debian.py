"""Builds minidl/datasets/data/austen.tsv.gz from Debian's r-cran-janeaustenr package.

    apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb pkg
    python tools/austen_from_debian.py pkg/usr/lib/R/site-library/janeaustenr/data

The package keeps each novel as an R character vector (one line of text each) in R's
lazy-load database (Rdata.rdx: a gzipped serialized index of (offset, length) pairs;
Rdata.rdb: zlib-compressed serialized values). This reads just that subset of R's XDR
serialization format, joins each novel's lines into paragraphs (blank-line separated),
keeps the paragraphs of 20 to 80 words of two novels, and writes a seeded sample of them
with their label, split into train and test rows, as a gzipped TSV.
"""
import gzip
import random
import struct
import sys
import zlib
from pathlib import Path

NOVELS = ("prideprejudice", "sensesensibility")   # label 0, 1
PER_NOVEL = 1200
TEST_FRACTION = 0.25
SEED = 2016


class Reader:
    """R's XDR serialization: the item types the janeaustenr data use."""

    def __init__(self, data):
        self.data, self.at = data, 0
        self.symbols = []   # what a REFSXP refers back to

    def int(self):
        value = struct.unpack_from(">i", self.data, self.at)[0]
        self.at += 4
        return value

    def header(self):
        assert self.data[:2] == b"X\n", "not an XDR serialization"
        self.at = 2
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            length = self.int()   # the native encoding's name
            self.at += length

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 254:      # NILVALUE_SXP
            return None
        if kind == 9:        # CHARSXP
            length = self.int()
            if length == -1:
                return None
            text = self.data[self.at:self.at + length].decode("utf-8")
            self.at += length
            return text
        if kind in (10, 13, 16, 19):   # LGLSXP, INTSXP, STRSXP, VECSXP
            length = self.int()
            if kind in (10, 13):
                value = list(struct.unpack_from(f">{length}i", self.data, self.at))
                self.at += 4 * length
            else:
                value = [self.item() for _ in range(length)]
            attributes = self.item() if has_attr else None
            return (value, attributes) if attributes is not None else value
        if kind == 2:        # LISTSXP (pairlist: attributes)
            out = {}
            while kind == 2:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            assert kind == 254, kind
            return out
        if kind == 1:        # SYMSXP
            self.symbols.append(self.item())
            return self.symbols[-1]
        if kind == 255:      # REFSXP: a symbol read before
            return self.symbols[(flags >> 8) - 1]
        raise ValueError(f"unsupported R type {kind}")


def read_rds(data):
    reader = Reader(data)
    reader.header()
    return reader.item()


def novels(directory):
    directory = Path(directory)
    index_values, attributes = read_rds(gzip.decompress((directory / "Rdata.rdx").read_bytes()))
    index = dict(zip(attributes["names"], index_values))
    variables, attrs = index["variables"]
    offsets = dict(zip(attrs["names"], variables))
    database = (directory / "Rdata.rdb").read_bytes()
    out = {}
    for name in NOVELS:
        offset, length = offsets[name]
        blob = database[offset:offset + length]
        value = read_rds(zlib.decompress(blob[4:]))
        out[name] = value[0] if isinstance(value, tuple) else value
    return out


def paragraphs(lines):
    current = []
    for line in lines + [""]:
        if line and line.strip():
            current.append(line.strip())
        elif current:
            yield " ".join(current)
            current = []


def main(directory, output):
    rng = random.Random(SEED)
    rows = []
    for label, (name, lines) in enumerate(novels(directory).items()):
        kept = [p for p in paragraphs(lines) if 20 <= len(p.split()) <= 80
                and not p.upper().startswith("CHAPTER")]
        rng.shuffle(kept)
        rows += [(label, p) for p in kept[:PER_NOVEL]]
    rng.shuffle(rows)
    cut = int(len(rows) * (1 - TEST_FRACTION))
    with gzip.open(output, "wt", encoding="utf-8", compresslevel=9) as out:
        out.write("split\tlabel\ttext\n")
        for i, (label, text) in enumerate(rows):
            out.write(f"{'train' if i < cut else 'test'}\t{label}\t"
                      f"{text.replace(chr(9), ' ')}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else
         "minidl/datasets/data/austen.tsv.gz")
