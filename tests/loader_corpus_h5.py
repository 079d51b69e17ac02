"""The HDF5 families of the hostile loader corpus (tests/loader_corpus.py adds them to its
own): legacy Keras ``.h5`` model and weights files written by minidl, then

    h5trunc    the file cut at many offsets
    h5flip     one byte XORed with a random value at a random offset (seeded); HDF5 keeps no
               checksum of its data, so a flip in a weight or in the config's text can load
               as another valid model ('unchecked': any load or clean error, no crash)
    h5struct   what HDF5 can do and a Keras file never does (external and soft links,
               virtual datasets, external storage, a filter plugin, a named datatype, a
               hard-link cycle), datasets declaring huge shapes or chunks, strings and
               compound types where weights should be, broken or hostile model_config JSON
               (unknown classes, a Lambda, a module path, 100,000 nested brackets), a
               missing or misshapen weight, a Keras 1 file

HOSTILE_EDITS also serves tests/test_keras_h5.py: name -> (edit of an open h5py.File, a
phrase the error must hold).
"""
import importlib.util
import json
import os

import numpy as np

# Without h5py (an optional extra) there is nothing to load these files with.
H5_FAMILIES = (("h5trunc", "h5flip", "h5struct") if importlib.util.find_spec("h5py")
               else ())


def _h5py():
    import h5py
    return h5py


def edited_copy(path, edit, out=None):
    """Apply ``edit(h5file)`` to a copy of the file at ``path`` (at ``out``, by default
    beside it); returns the copy's path."""
    out = out or path[:-3] + "_edited.h5"
    with open(path, "rb") as f, open(out, "wb") as g:
        g.write(f.read())
    with _h5py().File(out, "a") as f:
        edit(f)
    return out


def _weights(f):
    """The group holding layer_names: /model_weights of a model file, a weights file's
    root."""
    return f["model_weights"] if "model_weights" in f else f


def _external_link(f):
    _first_weighted(f)["extra"] = _h5py().ExternalLink("/etc/passwd", "/x")


def _soft_link(f):
    _weights(f)["alias"] = _h5py().SoftLink(_first_weighted(f).name)


def _virtual(f):
    layout = _h5py().VirtualLayout((4,), "f4")
    layout[:] = _h5py().VirtualSource("other.h5", "x", shape=(4,))
    _weights(f).create_virtual_dataset("virtual", layout)


def _external_storage(f):
    _weights(f).create_dataset("raw", shape=(4,), dtype="f4",
                     external=[("raw.bin", 0, 16)])


def _huge_shape(f):
    _weights(f).create_dataset("huge", shape=(2 ** 20, 2 ** 20), dtype="f4")


def _huge_compressed(f):
    _weights(f).create_dataset("huge", shape=(2 ** 26,), dtype="f4", chunks=(2 ** 16,),
                     compression="gzip")


def _huge_chunks(f):
    _weights(f).create_dataset("chunky", shape=(4,), maxshape=(None,), dtype="f4",
                     chunks=(2 ** 28,))


def _first_weighted(f):
    """The group of the first layer with weights in a legacy file."""
    group = _weights(f)
    for name in group.attrs["layer_names"]:
        name = name.decode() if isinstance(name, bytes) else name
        if len(group[name].attrs["weight_names"]):
            return group[name]


def _string_weight(f):
    group = _first_weighted(f)
    name = group.attrs["weight_names"][0]
    name = name.decode() if isinstance(name, bytes) else name
    del group[name]
    group[name] = np.array([b"not", b"numbers"])


def _compound_weight(f):
    _weights(f)["compound"] = np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])


def _plugin_filter(f):
    _weights(f).create_dataset("blosc", data=np.ones(16, "f4"), compression=32001,
                     allow_unknown_filter=True)


def _named_datatype(f):
    _weights(f)["type"] = np.dtype("f4")


def _bad_json(f):
    f.attrs["model_config"] = b'{"class_name": "Sequential", "config": ['


def _deep_json(f):
    f.attrs["model_config"] = b"[" * 100_000 + b"]" * 100_000


def _numeric_config(f):
    f.attrs["model_config"] = np.arange(3)


def _layer_names_not_text(f):
    _weights(f).attrs["layer_names"] = np.arange(3)


def _missing_weight(f):
    group = _first_weighted(f)
    name = group.attrs["weight_names"][0]
    del group[name.decode() if isinstance(name, bytes) else name]


def _wrong_shape_weight(f):
    group = _first_weighted(f)
    name = group.attrs["weight_names"][0]
    name = name.decode() if isinstance(name, bytes) else name
    del group[name]
    group[name] = np.zeros((7, 7), "f4")


def _unknown_class(f):
    config = json.loads(f.attrs["model_config"])
    config["config"]["layers"][1]["class_name"] = "os.system"
    f.attrs["model_config"] = json.dumps(config).encode()


def _lambda(f):
    config = json.loads(f.attrs["model_config"])
    config["config"]["layers"][1] = {"class_name": "Lambda", "config": {
        "name": "evil", "function": {"class_name": "__lambda__", "config": {
            "code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}}
    f.attrs["model_config"] = json.dumps(config).encode()


def _module_path(f):
    config = json.loads(f.attrs["model_config"])
    config["config"]["layers"][1].update(module="evil_module", registered_name="Dense")
    f.attrs["model_config"] = json.dumps(config).encode()


def _huge_units(f):
    # Weights of 4 TB declared by a config of a few bytes: refused before allocation.
    config = json.loads(f.attrs["model_config"])
    dense = next(layer for layer in config["config"]["layers"]
                 if layer["class_name"] == "Dense")
    dense["config"]["units"] = 10 ** 12
    f.attrs["model_config"] = json.dumps(config).encode()


def _keras1(f):
    _weights(f).attrs["keras_version"] = b"1.2.2"


HOSTILE_EDITS = {
    "external_link": (_external_link, "external link"),
    "soft_link": (_soft_link, "soft link"),
    "virtual_dataset": (_virtual, "virtual dataset"),
    "external_storage": (_external_storage, "external files"),
    "huge_declared_shape": (_huge_shape, "more than the file"),
    "huge_compressed_dataset": (_huge_compressed, "more than the file"),
    "huge_chunks": (_huge_chunks, "chunks of"),
    "string_weight": (_string_weight, "not numbers"),
    "compound_weight": (_compound_weight, "not numbers"),
    "plugin_filter": (_plugin_filter, "filter 32001"),
    "named_datatype": (_named_datatype, "not a group or dataset"),
    "bad_json": (_bad_json, "not valid JSON"),
    "deep_json": (_deep_json, "model_config"),
    "numeric_config": (_numeric_config, "not one JSON text"),
    "layer_names_not_text": (_layer_names_not_text, "not text"),
    "missing_weight": (_missing_weight, "is missing"),
    "wrong_shape_weight": (_wrong_shape_weight, "expects"),
    "unknown_class": (_unknown_class, "os.system"),
    "lambda": (_lambda, "Lambda"),
    "module_path": (_module_path, "evil_module"),
    "huge_units": (_huge_units, "model_config does not describe"),
    "keras_1": (_keras1, "Keras '1.2.2'"),
}


def _hard_link_cycle(f):
    group = _weights(f).create_group("cycle")
    group["loop"] = group   # a tree without end


HOSTILE_EDITS["hard_link_cycle"] = (_hard_link_cycle, "reached by 2 links")
# Edits of the config: model files only.
CONFIG_EDITS = ("bad_json", "deep_json", "numeric_config", "unknown_class", "lambda",
                "module_path", "huge_units")


def _sources(directory):
    """Save the sources and their references (loader_corpus's refs/<name>.json, .npz):
    name -> (path, loader)."""
    import minidl
    from minidl.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input
    from loader_corpus import _save_reference
    refs = os.path.join(directory, "refs")
    folder = os.path.join(directory, "h5_sources")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(refs, exist_ok=True)
    rng = np.random.default_rng(18)
    minidl.utils.set_random_seed(18)
    mlp = minidl.Sequential([Input((8,)), Dense(16, activation="relu"), Dropout(0.2, seed=3),
                             Dense(3, activation="softmax")])
    mlp.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    mlp.fit(rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, 32), epochs=1,
            batch_size=8, verbose=0)
    cnn = minidl.Sequential([Input((8, 8, 1)), Conv2D(4, 3, activation="relu"),
                             BatchNormalization(), Flatten(), Dense(3, activation="softmax")])
    cnn.compile(minidl.optimizers.SGD(momentum=0.9), "sparse_categorical_crossentropy")
    cnn.fit(rng.random((16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 16), epochs=1,
            batch_size=8, verbose=0)
    sources = {}
    for name, model in (("h5mlp", mlp), ("h5cnn", cnn)):
        sources[name] = (os.path.join(folder, f"{name}.h5"), "model")
        model.save(sources[name][0])
        _save_reference(refs, name, model)
    sources["h5weights"] = (os.path.join(folder, "h5weights.h5"), "weights")
    mlp.save_weights(sources["h5weights"][0])
    _save_reference(refs, "h5weights", mlp, optimizer=False)
    return sources


def build_h5_cases(directory, rng, sample):
    """Write the HDF5 cases under ``directory``/cases; returns them (loader_corpus.Case)."""
    from loader_corpus import Case, _truncation_offsets
    cases_dir = os.path.join(directory, "cases")
    os.makedirs(cases_dir, exist_ok=True)
    cases = []

    def add(case_id, family, loader, expect, reference, data=None, make=None):
        path = os.path.join(cases_dir, f"{case_id}.h5")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            make(path)
        cases.append(Case(case_id, family, path, loader, expect, reference))

    for name, (path, loader) in _sources(directory).items():
        with open(path, "rb") as f:
            data = f.read()
        for cut in _truncation_offsets(len(data), 12 if sample else 140):
            add(f"h5trunc-{name}-{cut}", "h5trunc", loader, "invalid", name, data[:cut])
        for i in range(15 if sample else 200):
            damaged = bytearray(data)
            at = rng.randrange(len(data))
            damaged[at] ^= rng.randrange(1, 256)
            add(f"h5flip-{name}-{i}-at{at}", "h5flip", loader, "unchecked", name,
                bytes(damaged))
        for edit_name, (edit, _) in sorted(HOSTILE_EDITS.items()):
            if loader == "weights" and edit_name in CONFIG_EDITS:
                continue
            add(f"h5struct-{name}-{edit_name}", "h5struct", loader, "invalid", name,
                make=lambda out, e=edit, p=path: edited_copy(p, e, out))
    return cases
