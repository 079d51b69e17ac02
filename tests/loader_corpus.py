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
# Keras's files (issue 18): see the block "Keras 3 files" below.
KERAS_FAMILIES = ("keras-trunc", "keras-flip", "keras-zipdir", "keras-json", "keras-h5")
FAMILIES += KERAS_FAMILIES

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

    def path(self, case_id, loader, suffix=".minidl"):
        # A backup is found as <dir>/latest.minidl: each backup case gets a directory.
        if loader == "backup":
            folder = os.path.join(self.directory, "cases", case_id)
            os.makedirs(folder, exist_ok=True)
            return os.path.join(folder, "latest.minidl")
        os.makedirs(os.path.join(self.directory, "cases"), exist_ok=True)
        return os.path.join(self.directory, "cases", f"{case_id}{suffix}")

    def add(self, case_id, family, loader, expect, reference, data=None, make=None,
            suffix=".minidl"):
        path = self.path(case_id, loader, suffix)
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
    _keras_cases(writer, directory, rng, sample)
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


# ==== Keras 3 files (issue 18): .keras archives and .weights.h5 ====
#
# The sources are files Keras 3 wrote (tests/data/keras): the MLP and the CNN with
# BatchNormalization as .keras (loader 'model'), the MLP's .weights.h5 (loader 'weights').
# Their references are what minidl loads from the untouched files. Families:
#
#     keras-trunc    the files cut at many offsets
#     keras-flip     one byte of a .keras XORed (the zip's CRCs cover config.json and the
#                    weights; HDF5 has no checksum, so a flipped weight in a bare .weights.h5
#                    would load as another value, as in Keras: not in this family)
#     keras-zipdir   zip directory lies, as the native family
#     keras-json     config.json edits: unknown classes, module paths, a Lambda with
#                    marshalled bytecode, huge declared shapes, wrong types, deep nesting
#     keras-h5       model.weights.h5 (and .weights.h5) members made with h5py: external and
#                    soft links, virtual datasets, datasets declaring terabytes, strings,
#                    missing and extra weights, a compression bomb, a hard-link cycle

KERAS_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "keras")


def _keras_sources(directory):
    """name -> (path, loader, suffix) of the Keras sources, with their references."""
    import shutil
    import minidl
    refs = os.path.join(directory, "refs")
    sources = {}
    for name, source, loader, suffix in (
            ("keras_mlp", "mlp.keras", "model", ".keras"),
            ("keras_cnn", "cnn_bn.keras", "model", ".keras"),
            ("keras_weights", "mlp.weights.h5", "weights", ".weights.h5")):
        path = os.path.join(directory, name + suffix)
        shutil.copyfile(os.path.join(KERAS_DATA, source), path)
        model = minidl.models.load_model(os.path.join(KERAS_DATA, source.split(".")[0]
                                                      + ".keras"))
        _save_reference(refs, name, model, optimizer=loader == "model")
        sources[name] = (path, loader, suffix)
    return sources


def _keras_config_edits(config):
    """(name, expect, edited config.json object) of hostile edits of a Keras config."""
    def edited(change):
        copy = json.loads(json.dumps(config))
        change(copy)
        return copy

    def dense(c):
        return c["config"]["layers"][1]

    yield "unknown_class", "invalid", edited(lambda c: dense(c).update(class_name="NoSuch"))
    yield "module_os_system", "invalid", edited(lambda c: dense(c).update(
        module="os", class_name="system", registered_name="os>system"))
    yield "module_builtins_eval", "invalid", edited(lambda c: dense(c).update(
        module="builtins", class_name="eval", registered_name=None))
    yield "model_module_subprocess", "invalid", edited(lambda c: c.update(
        module="subprocess", class_name="Popen"))
    yield "lambda_bytecode", "invalid", edited(lambda c: dense(c).update(
        class_name="Lambda", config={"name": "l", "function": {
            "class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTACkBTqkAKQFyAQAAAA==",
                "defaults": None, "closure": None}}}))
    yield "activation_module_path", "invalid", edited(lambda c: dense(c)["config"].update(
        activation={"module": "os", "class_name": "function", "config": "system",
                    "registered_name": "function"}))
    yield "initializer_custom", "invalid", edited(lambda c: dense(c)["config"].update(
        kernel_initializer={"module": "evil", "class_name": "Init", "config": {},
                            "registered_name": "evil>Init"}))
    yield "units_1e12", "invalid", edited(lambda c: dense(c)["config"].update(units=10 ** 12))
    yield "units_string", "invalid", edited(lambda c: dense(c)["config"].update(units="16"))
    yield "units_negative", "invalid", edited(lambda c: dense(c)["config"].update(units=-3))
    yield "input_shape_1e15", "invalid", edited(
        lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 10 ** 15]))
    yield "layers_not_list", "invalid", edited(lambda c: c["config"].update(layers={"a": 1}))
    yield "config_null", "invalid", edited(lambda c: c.update(config=None))
    yield "dtype_object", "invalid", edited(lambda c: dense(c)["config"].update(
        dtype={"module": "keras", "class_name": "DTypePolicy",
               "config": {"name": "object"}, "registered_name": None}))
    yield "optimizer_module_path", "invalid", edited(lambda c: c["compile_config"].update(
        optimizer={"module": "os", "class_name": "system", "config": {},
                   "registered_name": None}))
    yield "loss_custom", "invalid", edited(lambda c: c["compile_config"].update(
        loss={"module": "evil", "class_name": "Loss", "config": {},
              "registered_name": "evil>Loss"}))
    # Raw text: 100,000 nested lists where a number belongs.
    yield "deep_nesting", "invalid", json.dumps(config).replace(
        '"units": 16', '"units": ' + "[" * 100_000 + "]" * 100_000, 1)


def _keras_h5_edits():
    """(name, fill(h5file)) of hostile changes to a copy of a Keras weights file."""
    import numpy as np
    import h5py

    def replace(path, make):
        def fill(f):
            del f[path]
            make(f, path)
        return fill

    def virtual(f, path):
        source = h5py.VirtualSource("/etc/passwd", "data", shape=(16,))
        layout = h5py.VirtualLayout(shape=(16,), dtype="f4")
        layout[:] = source
        f.create_virtual_dataset(path, layout)

    def cycle(f):
        # A hard link from a group to its ancestor: a walk that follows it never ends
        # unless bounded.
        f["layers/dense/vars/loop"] = f["layers"]

    def chain(f):
        group = f
        for i in range(2000):
            group = group.create_group("g")

    yield "external_link", replace("layers/dense/vars/0",
                                   lambda f, p: f.__setitem__(p, h5py.ExternalLink(
                                       "/etc/passwd", "/x")))
    yield "external_link_group", replace("layers/dense_1",
                                         lambda f, p: f.__setitem__(p, h5py.ExternalLink(
                                             "other.h5", "/layers/dense_1")))
    yield "soft_link", replace("layers/dense/vars/1", lambda f, p: f.__setitem__(
        p, h5py.SoftLink("/layers/dense_1/vars/1")))
    yield "virtual_dataset", replace("layers/dense/vars/1", virtual)
    yield "huge_shape", replace("layers/dense/vars/0", lambda f, p: f.create_dataset(
        p, shape=(2 ** 20, 2 ** 20), dtype="f4", chunks=(1, 64)))
    # 64 MB of zeros deflated to a few tens of KB.
    yield "compression_bomb", replace("layers/dense/vars/0", lambda f, p: f.create_dataset(
        p, data=np.zeros((4000, 4000), "f4"), chunks=(1000, 1000), compression="gzip",
        compression_opts=9))
    yield "strings", replace("layers/dense/vars/0", lambda f, p: f.create_dataset(
        p, data=np.array([b"abcd"] * 128)))
    yield "wrong_shape", replace("layers/dense/vars/0", lambda f, p: f.create_dataset(
        p, data=np.zeros((16, 8), "f4")))
    yield "scalar_for_kernel", replace("layers/dense/vars/0", lambda f, p: f.create_dataset(
        p, data=np.float32(1)))
    yield "compound_dtype", replace("layers/dense/vars/1", lambda f, p: f.create_dataset(
        p, data=np.zeros(16, [("a", "f4"), ("b", "i4")])))
    yield "missing_group", lambda f: f.__delitem__("layers/dense_1")
    yield "missing_var", lambda f: f.__delitem__("layers/dense/vars/1")
    yield "extra_var", lambda f: f["layers/dense/vars"].create_dataset(
        "2", data=np.zeros(3, "f4"))
    yield "hard_link_cycle", cycle
    yield "deep_chain", chain


def _keras_member(source_path, fill, workdir):
    """The HDF5 bytes of ``source_path`` (a .keras archive's weights member or a
    .weights.h5) changed by ``fill``."""
    import h5py
    original = os.path.join(workdir, "original.h5")
    changed = os.path.join(workdir, "changed.h5")
    if zipfile.is_zipfile(source_path):
        with zipfile.ZipFile(source_path) as zf, open(original, "wb") as f:
            f.write(zf.read("model.weights.h5"))
    else:
        with open(source_path, "rb") as src, open(original, "wb") as f:
            f.write(src.read())
    with h5py.File(original, "r") as src, h5py.File(changed, "w") as dst:
        for key in src:
            src.copy(src[key], dst, key)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        fill(dst)
    with open(changed, "rb") as f:
        data = f.read()
    os.remove(original)
    os.remove(changed)
    return data


def _keras_cases(writer, directory, rng, sample):
    """Add the Keras families' cases to ``writer``."""
    sources = _keras_sources(directory)
    for name, (path, loader, suffix) in sources.items():
        with open(path, "rb") as f:
            data = f.read()
        for cut in _truncation_offsets(len(data), 10 if sample else 140):
            writer.add(f"keras-trunc-{name}-{cut}", "keras-trunc", loader, "invalid", name,
                       data[:cut], suffix=suffix)
        if not zipfile.is_zipfile(path):
            continue
        for i in range(12 if sample else 200):
            damaged = bytearray(data)
            at = rng.randrange(len(data))
            damaged[at] ^= rng.randrange(1, 256)
            writer.add(f"keras-flip-{name}-{i}-at{at}", "keras-flip", loader, "either", name,
                       bytes(damaged), suffix=suffix)
        cases = list(_zipdir_cases(data))
        if sample:
            cases = rng.sample(cases, 8)
        for case, damaged in cases:
            writer.add(f"keras-zipdir-{name}-{case}", "keras-zipdir", loader, "either", name,
                       damaged, suffix=suffix)
    mlp_path = sources["keras_mlp"][0]
    with zipfile.ZipFile(mlp_path) as zf:
        config = json.loads(zf.read("config.json"))
    for case, expect, edited in _keras_config_edits(config):
        text = edited if isinstance(edited, str) else json.dumps(edited)
        writer.add(f"keras-json-{case}", "keras-json", "model", expect, "keras_mlp",
                   make=lambda out, t=text: rewrite(
                       mlp_path, out, {"config.json": t.encode()}),
                   suffix=".keras")
    # An unknown member (Keras's assets) is ignored: the model loads as it is.
    writer.add("keras-json-extra_member", "keras-json", "model", "valid", "keras_mlp",
               make=lambda out: rewrite(mlp_path, out, extra={"assets/x.txt": b"x"}),
               suffix=".keras")
    workdir = os.path.join(directory, "keras_work")
    os.makedirs(workdir, exist_ok=True)
    weights_path = sources["keras_weights"][0]
    for case, fill in _keras_h5_edits():
        # Groups Keras does not read are ignored, as Keras does: 2,000 nested ones load.
        expect = "valid" if case == "deep_chain" else "invalid"
        member = _keras_member(mlp_path, fill, workdir)
        writer.add(f"keras-h5-{case}", "keras-h5", "model", expect, "keras_mlp",
                   make=lambda out, m=member: rewrite(mlp_path, out,
                                                      {"model.weights.h5": m}),
                   suffix=".keras")
        writer.add(f"keras-h5-weights-{case}", "keras-h5", "weights", expect,
                   "keras_weights", _keras_member(weights_path, fill, workdir),
                   suffix=".weights.h5")
    writer.add("keras-h5-not_hdf5", "keras-h5", "model", "invalid", "keras_mlp",
               make=lambda out: rewrite(mlp_path, out, {"model.weights.h5": b"\x89HDF" * 64}),
               suffix=".keras")
    writer.add("keras-h5-empty_member", "keras-h5", "model", "invalid", "keras_mlp",
               make=lambda out: rewrite(mlp_path, out, {"model.weights.h5": b""}),
               suffix=".keras")
