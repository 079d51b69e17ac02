"""A hostile corpus for minidl's model-file loaders (tests/loader_probe.py runs it).

The corpus is made from real saved files (the sources: an MLP, a CNN with BatchNormalization
and Dropout, a weights-only file, a BackupAndRestore backup) and, for the config edits, from
the saved models of tests/hostile_configs.py. Families of cases:

    trunc    the file cut at many offsets
    flip     one byte XORed with a random value at a random offset (seeded)
    zipdir   zip directory entries declaring huge sizes or offsets, overlapping members,
             broken local headers, a huge central directory
    npy      .npy members whose headers declare huge shapes, huge header lengths, object or
             negative dims, or whose data is cut
    json     wrong-typed values in every config field (hostile_configs.py), unknown classes,
             20,000 layers, a small deflated config of a million layers, absurd units, input
             shapes and nesting
    special  /dev/zero, /dev/urandom, /dev/null, a FIFO, a socket, a directory, a symlink to
             /dev/zero, an empty file, a missing file
    h5...    legacy Keras .h5 files cut, flipped and given what HDF5 allows and Keras files
             never hold (loader_corpus_h5.py)

Each case names a loader ('model': load_model; 'weights': load_weights into a model of the
source's architecture; 'backup': BackupAndRestore resuming into such a model) and what a
loader must make of it: 'invalid' (a clean error), 'valid' (a correct load), 'either' (a
byte flip in a zip timestamp changes nothing, one in a weight is caught by the CRC), or
'unchecked' (a flip in an HDF5 file, which keeps no checksum of its data: a clean error, or
a load of whatever model the changed bytes describe). A load
is checked against a reference: refs/<name>.json (the model's config, its optimizer's config,
the epoch a backup resumes from) and refs/<name>.npz (weights, optimizer step count and slots).
"""
import dataclasses
import json
import os
import random
import socket
import struct
import tempfile
import zipfile

from zip_surgery import patch_member, read_directory, rewrite, write_directory, zip64_extra

FAMILIES = ("trunc", "flip", "zipdir", "npy", "json", "special")

# Legacy Keras .h5 files (issue 18): their families live in loader_corpus_h5.py.
from loader_corpus_h5 import H5_FAMILIES, build_h5_cases  # noqa: E402

FAMILIES += H5_FAMILIES


@dataclasses.dataclass
class Case:
    id: str
    family: str
    path: str
    loader: str          # 'model', 'weights' or 'backup'
    expect: str          # 'invalid', 'valid' or 'either'
    reference: str       # the reference (refs/<name>.json, .npz) a load is compared with


def npy_header(descr, shape, version=(1, 0), fortran=False):
    """The bytes of a .npy header declaring ``descr`` and ``shape`` (no data)."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 11) % 64) + b"\n"
    length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + length + header


# ---- sources and references ----

def _save_reference(refs, name, model, epoch=None, optimizer=True):
    """refs/<name>.json: the model's config (to_json form), optimizer config and epoch;
    refs/<name>.npz: its weights and (with ``optimizer``) the optimizer's state."""
    import numpy as np
    from minidl import optimizers
    compiled = optimizer and model.compiled and model.optimizer.built
    reference = {"model": json.loads(model.to_json()), "epoch": epoch,
                 "optimizer": optimizers.serialize(model.optimizer) if compiled else None}
    with open(os.path.join(refs, f"{name}.json"), "w") as f:
        json.dump(reference, f)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    if compiled:
        arrays["iterations"] = np.array(model.optimizer.iterations)
        arrays.update({f"s{i}": s for i, s in enumerate(model.optimizer.get_slot_arrays())})
    np.savez(os.path.join(refs, f"{name}.npz"), **arrays)


def build_sources(directory):
    """Save the four source files under ``directory``; returns name -> (path, loader)."""
    import numpy as np
    import minidl
    from minidl.callbacks import BackupAndRestore, Callback
    from minidl.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                               MaxPooling2D)
    refs = os.path.join(directory, "refs")
    os.makedirs(refs, exist_ok=True)
    rng = np.random.default_rng(0)
    sources = {}

    minidl.utils.set_random_seed(1)
    mlp = minidl.Sequential([Dense(16, activation="relu", input_shape=(8,)),
                             Dropout(0.2, seed=3), Dense(3, activation="softmax")])
    mlp.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    mlp.fit(rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, 32), epochs=1,
            batch_size=8, verbose=0)
    sources["mlp"] = (os.path.join(directory, "mlp.minidl"), "model")
    mlp.save(sources["mlp"][0])
    _save_reference(refs, "mlp", mlp)
    sources["weights"] = (os.path.join(directory, "weights.minidl"), "weights")
    mlp.save_weights(sources["weights"][0])
    _save_reference(refs, "weights", mlp, optimizer=False)

    cnn = minidl.Sequential([Input((8, 8, 1)), Conv2D(4, 3, activation="relu"),
                             BatchNormalization(), MaxPooling2D(), Dropout(0.25), Flatten(),
                             Dense(3, activation="softmax")])
    cnn.compile(minidl.optimizers.SGD(learning_rate=minidl.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=3, decay_rate=0.5), momentum=0.9),
        "sparse_categorical_crossentropy", metrics=["accuracy"])
    cnn.fit(rng.random((16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 16), epochs=1,
            batch_size=8, verbose=0)
    sources["cnn"] = (os.path.join(directory, "cnn.minidl"), "model")
    cnn.save(sources["cnn"][0])
    _save_reference(refs, "cnn", cnn)

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt
    backup_dir = os.path.join(directory, "backup_run")
    minidl.utils.set_random_seed(2)
    model = minidl.Sequential([Dense(8, activation="tanh", input_shape=(8,)),
                               Dense(3, activation="softmax")])
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    try:
        model.fit(rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, 32), epochs=3,
                  batch_size=8, verbose=0,
                  callbacks=[BackupAndRestore(backup_dir), Interrupt()])
    except KeyboardInterrupt:
        pass
    sources["backup"] = (os.path.join(directory, "backup.minidl"), "backup")
    os.replace(os.path.join(backup_dir, "latest.minidl"), sources["backup"][0])
    _save_reference(refs, "backup", model, epoch=1)
    return sources


# ---- the cases ----

class _Writer:
    """Writes case files under ``directory`` and collects the cases."""

    def __init__(self, directory):
        self.directory = directory
        self.cases = []

    def path(self, case_id, loader):
        # A backup is found as <dir>/latest.minidl: each backup case gets a directory.
        if loader == "backup":
            folder = os.path.join(self.directory, "cases", case_id)
            os.makedirs(folder, exist_ok=True)
            return os.path.join(folder, "latest.minidl")
        os.makedirs(os.path.join(self.directory, "cases"), exist_ok=True)
        return os.path.join(self.directory, "cases", f"{case_id}.minidl")

    def add(self, case_id, family, loader, expect, reference, data=None, make=None):
        path = self.path(case_id, loader)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        elif make is not None:
            make(path)
        self.cases.append(Case(case_id, family, path, loader, expect, reference))


def _truncation_offsets(n, count):
    step = max(1, n // count)
    tail = [n - k for k in (1, 2, 4, 8, 16, 21, 22, 23, 46, 64, 100, 200) if n - k > 0]
    return sorted(set([0, 1, 4, 22, 30] + list(range(0, n, step)) + tail) - {n})


def _zipdir_cases(data):
    """(name, bytes) of directory-level lies about ``data``."""
    entries, offset = read_directory(data)
    names = [e["name"].decode() for e in entries]
    targets = [n for n in names if n.endswith(".npy")][:1] + ["metadata.json"]
    if "config.json" in names:
        targets.append("config.json")
    huge = 0xFFFFFFFE
    for name in targets:
        key = name.replace("/", "_")
        yield f"{key}-file_size", patch_member(data, name, file_size=huge)
        yield f"{key}-compress_size", patch_member(data, name, compress_size=huge)
        yield f"{key}-both_sizes", patch_member(data, name, file_size=huge, compress_size=huge)
        yield f"{key}-offset", patch_member(data, name, header_offset=huge)
        yield f"{key}-deflate_claim", patch_member(data, name, compress_type=8,
                                                   file_size=huge)
        yield f"{key}-zip64_sizes", patch_member(
            data, name, file_size=0xFFFFFFFF, compress_size=0xFFFFFFFF,
            extra=zip64_extra(2 ** 62, 2 ** 62))
        entry = next(e for e in entries if e["name"] == name.encode())
        local = entry["header_offset"]
        for field, at in (("local_name_length", 26), ("local_extra_length", 28)):
            damaged = bytearray(data)
            damaged[local + at:local + at + 2] = b"\xff\xff"
            yield f"{key}-{field}", bytes(damaged)
    # Overlap: one member's data listed again under 200 names (a zip-bomb technique).
    big = max(entries, key=lambda e: e["compress_size"])
    copies = [dict(big, name=f"zz/{i:03d}.npy".encode()) for i in range(200)]
    yield "overlapping_members", write_directory(data, entries + copies, offset)
    yield "cd_size", write_directory(data, entries, offset, cd_size=huge)
    yield "cd_offset", write_directory(data, entries, offset, cd_offset=huge)
    yield "cd_count", write_directory(data, entries, offset, count=0xFFFF)


def _npy_cases():
    """(name, member content) of hostile .npy members."""
    yield "huge_1d", npy_header("<f4", (2 ** 40,))
    yield "huge_2d", npy_header("<f4", (2 ** 31, 2 ** 31))
    yield "huge_header_length", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 ** 31) + b"{"
    yield "long_header", b"\x93NUMPY\x01\x00" + struct.pack("<H", 65535) + b" " * 65535
    yield "object", npy_header("|O", (4,)) + b"\x80\x04N." * 4
    yield "negative_dim", npy_header("<f4", (-1, 8))
    yield "fortran", npy_header("<f4", (8, 16), fortran=True) + bytes(512)
    yield "bad_magic", b"\x93NUMPX\x01\x00" + bytes(200)
    yield "version_3", npy_header("<f4", (8,), version=(3, 0)) + bytes(32)


def _json_extras(members):
    """(name, expect, reference model config or None, member edits) of the config edits of
    the MLP beyond the table: many layers, absurd sizes, the issue's examples."""
    mlp = members["mlp"]

    def with_layers(layers, build_shape=None):
        config = json.loads(json.dumps(mlp["config.json"]))
        config["config"]["layers"] = layers
        if build_shape is not None:
            config["config"]["build_input_shape"] = build_shape
        return config

    import minidl
    from minidl.layers import Flatten, Input, LayerNormalization
    # The MLP's layers: its Input, Dense, Dropout (seeded), Dense; the random states are
    # those of the layers after the Input.
    layers = mlp["config.json"]["config"]["layers"]
    flatten = [{"class_name": "Flatten", "config": Flatten(name=f"many_{i}").get_config()}
               for i in range(20_000)]
    many = with_layers(layers[:2] + flatten + layers[2:])
    states = mlp["state.json"]["layer_random_states"]
    many_state = dict(mlp["state.json"],
                      layer_random_states=states[:1] + [None] * 20_000 + states[1:])
    yield ("20000_layers", "valid", {"class_name": "Sequential", "config": many["config"]},
           {"config.json": many, "state.json": many_state})
    # More layers than a file of its size may state (it deflates 300 to 1).
    million = with_layers([{"class_name": "Flatten", "config": {}}] * 1_000_000)
    yield ("deflated_million_layers", "invalid", None,
           {"config.json": million, "deflate": True})
    units = with_layers(layers[:1] + [dict(layers[1], config=dict(layers[1]["config"],
                                                                   units=10 ** 9))]
                        + layers[2:])
    yield "dense_units_1e9", "invalid", None, {"config.json": units}
    # Building it allocates nothing: no weights, and LayerNormalization's stand-ins for its
    # absent gamma and beta are made on the first call.
    wide_model = minidl.Sequential([Input((10 ** 9,)),
                                    LayerNormalization(center=False, scale=False, name="ln")])
    wide = dict(mlp["config.json"], **json.loads(wide_model.to_json()))
    yield ("weightless_input_1e9", "valid",
           {"class_name": "Sequential", "config": wide["config"]},
           {"config.json": dict(wide, compile_config=None),
            "state.json": dict(mlp["state.json"], layer_random_states=[None]),
            "drop_arrays": True})
    noise = json.loads(json.dumps(mlp["config.json"]))
    noise["config"]["layers"][2]["config"]["noise_shape"] = [None, 3]
    yield "dropout_noise_shape_mismatch", "invalid", None, {"config.json": noise}
    nested = '{"class_name": "Sequential", "config": ' + "[" * 100_000 + "]" * 100_000 + "}"
    yield "deep_nesting", "invalid", None, {"config.json raw": nested}
    digits = json.dumps(mlp["config.json"]).replace('"units": 16', '"units": 1' + "0" * 5000)
    yield "huge_int_literal", "invalid", None, {"config.json raw": digits}
    rate = json.dumps(mlp["config.json"]).replace('"rate": 0.2', '"rate": NaN')
    yield "nan_rate", "invalid", None, {"config.json raw": rate}


def _write_members(source_path, out, edit):
    """Write ``source_path`` with the member edits of a json case to ``out``."""
    replace = {}
    for key, value in edit.items():
        if key.endswith(" raw"):
            replace[key[:-4]] = value.encode()
        elif key.endswith(".json"):
            replace[key] = json.dumps(value).encode()
    deflate = ("config.json",) if edit.get("deflate") else ()
    if edit.get("drop_arrays"):
        with zipfile.ZipFile(source_path) as zin, zipfile.ZipFile(out, "w") as zout:
            for name in zin.namelist():
                if name.endswith(".json"):
                    zout.writestr(name, replace.get(name, zin.read(name)))
        return
    rewrite(source_path, out, replace=replace, deflate=deflate)


def _special_cases(writer, loader, reference):
    def fifo(path):
        os.mkfifo(path)

    def sock(path):
        # AF_UNIX paths are short; bind in a short directory and link the socket in.
        short = tempfile.mkdtemp(prefix="s")
        server = socket.socket(socket.AF_UNIX)
        server.bind(os.path.join(short, "s"))
        os.rename(os.path.join(short, "s"), path)
        server.close()
        os.rmdir(short)

    def link(target):
        return lambda path: os.symlink(target, path)

    def directory(path):
        os.makedirs(path)

    def empty(path):
        open(path, "wb").close()

    makers = [("dev_zero", link("/dev/zero")), ("dev_urandom", link("/dev/urandom")),
              ("dev_null", link("/dev/null")), ("fifo", fifo), ("socket", sock),
              ("directory", directory), ("symlink_chain_to_zero", None), ("empty", empty)]
    for name, make in makers:
        case_id = f"special-{loader}-{name}"
        if name == "symlink_chain_to_zero":
            first = writer.path(case_id, loader) + ".hop"
            os.symlink("/dev/zero", first)
            make = link(first)
        # A device path itself (not a link to it) for the plain model loader.
        if loader == "model" and name in ("dev_zero", "dev_urandom", "dev_null"):
            writer.cases.append(Case(case_id, "special", f"/dev/{name[4:]}", loader,
                                     "invalid", reference))
            continue
        writer.add(case_id, "special", loader, "invalid", reference, make=make)
    if loader != "backup":   # a missing backup is no backup: fit starts fresh
        writer.cases.append(Case(f"special-{loader}-missing", "special",
                                 os.path.join(writer.directory, "cases", "missing.minidl"),
                                 loader, "invalid", reference))


def build_corpus(directory, sample=False, seed=0):
    """Write the corpus under ``directory``; returns the cases.

    Args:
        directory: an empty directory.
        sample: a few cases of each family (what the test suite runs), not the whole corpus.
        seed: seed of the sampled offsets and values.
    """
    import numpy as np
    import hostile_configs
    rng = random.Random(seed)
    sources = build_sources(directory)
    writer = _Writer(directory)
    members = {}
    for name, (path, loader) in sources.items():
        members[name] = {n: json.loads(content) for n, content in members_of(path).items()
                         if n.endswith(".json")}
        with open(path, "rb") as f:
            data = f.read()
        for cut in _truncation_offsets(len(data), 12 if sample else 140):
            writer.add(f"trunc-{name}-{cut}", "trunc", loader, "invalid", name, data[:cut])
        for i in range(15 if sample else 200):
            damaged = bytearray(data)
            at = rng.randrange(len(data))
            damaged[at] ^= rng.randrange(1, 256)
            writer.add(f"flip-{name}-{i}-at{at}", "flip", loader, "either", name,
                       bytes(damaged))
        for case, damaged in _zipdir_cases(data):
            # A lie that no reader acts on (zipfile never reads the end record's entry
            # count, reads a stored member by its own size) may leave the model as it was.
            writer.add(f"zipdir-{name}-{case}", "zipdir", loader, "either", name, damaged)
        first = sorted(n for n in members_of(path) if n.startswith("weights/"))[0]
        for case, content in _npy_cases():
            writer.add(f"npy-{name}-{case}", "npy", loader, "invalid", name,
                       make=lambda out, c=content, p=path: rewrite(p, out, {first: c}))
        if not any(c.family == "special" and c.loader == loader for c in writer.cases):
            _special_cases(writer, loader, name)

    refs = os.path.join(directory, "refs")
    for case, expect, reference, edit in _json_extras(members):
        if reference is not None:
            with open(os.path.join(refs, f"{case}.json"), "w") as f:
                json.dump({"model": reference, "epoch": None, "optimizer": None}, f)
            with np.load(os.path.join(refs, "mlp.npz")) as arrays:
                keep = {} if edit.get("drop_arrays") else {k: arrays[k] for k in arrays.files
                                                           if k.startswith("w")}
            np.savez(os.path.join(refs, f"{case}.npz"), **keep)
        writer.add(f"json-{case}", "json", "model", expect, case if reference else "mlp",
                   make=lambda out, e=edit: _write_members(sources["mlp"][0], out, e))
    state = dict(members["backup"]["state.json"])
    for i, epoch in enumerate(["1", -1, True, None, 2.5]):
        edit = {"state.json": dict(state, epoch=epoch)}
        writer.add(f"json-backup-epoch-{i}", "json", "backup", "invalid", "backup",
                   make=lambda out, e=edit: _write_members(sources["backup"][0], out, e))
    config = json.loads(json.dumps(members["backup"]["config.json"]))
    config["compile_config"]["optimizer"]["class_name"] = "Adam"
    writer.add("json-backup-other-optimizer", "json", "backup", "invalid", "backup",
               make=lambda out: _write_members(sources["backup"][0], out,
                                               {"config.json": config}))

    bases = _table_bases(directory)
    edits = list(hostile_configs.all_edits())
    if sample:
        edits = rng.sample(edits, 40)
    for edit in edits:
        base_path, base_members = bases[edit.base]
        changed = hostile_configs.edited(base_members, edit)
        writer.add(f"json-{edit.id}", "json", "model", "invalid", "mlp",
                   make=lambda out, p=base_path, m=changed: _write_members(p, out, m))
    if H5_FAMILIES:
        writer.cases += build_h5_cases(directory, rng, sample)
    return writer.cases


def _table_bases(directory):
    """The saved models the edits of hostile_configs apply to: base -> (path, members)."""
    import minidl
    from minidl.layers import Dense, Input
    import hostile_configs
    folder = os.path.join(directory, "table_bases")
    os.makedirs(folder)
    bases = {}
    for name in hostile_configs.LAYER_SAMPLES:
        model = hostile_configs.layer_model(name)
        bases[f"layer:{name}"] = os.path.join(folder, f"{name}.minidl")
        model.save(bases[f"layer:{name}"])
    model = minidl.Sequential([Input((4,)), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    bases["compiled"] = os.path.join(folder, "compiled.minidl")
    model.save(bases["compiled"])
    return {base: (path, {n: json.loads(content) for n, content in members_of(path).items()
                          if n.endswith(".json")})
            for base, path in bases.items()}


def members_of(path):
    """The members of the archive ``path``: name -> bytes."""
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}
