"""Calibration sources images and callable: config checks, precision keys, preflight and the arrays the
precision task gets. Fast: nothing here imports torch or runs ModelOpt."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Project
from trtbuild import api
from trtbuild.errors import ConfigError
from trtbuild.plan.graph import TaskNode, canonical_json
from trtbuild.plan.plan import preflight
from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import Spec
from trtbuild.tasks import calibration as calibrations
from trtbuild.tasks.base import params_json
from trtbuild.tasks.calibration.base import InputSignature
from trtbuild.tasks.calibration.from_callable import CallableCalibration

CALIB_MODULE = """
import numpy as np


def batches():
    rng = np.random.default_rng(0)
    for _ in range(3):
        yield {"input": rng.random((2, 3, 16, 16), dtype=np.float32)}


def forever():
    while True:
        yield np.zeros((4, 3, 16, 16), np.float32)


def wrong_dtype():
    return {"input": np.zeros((2, 3, 16, 16), np.float64)}
"""


def configure(project: Project, calibration: str, precisions: str = "[fp32, int8]") -> Path:
    """The tiny project with these precisions and this `calibration:` block (YAML, flow or block)."""
    text = project.config.read_text()
    head, _, tail = text.partition("build:\n")
    head = head.partition("precision: ")[0]  # drop what an earlier call wrote
    block = textwrap.dedent(calibration).strip()
    project.config.write_text(
        f"{head}precision: {precisions}\ncalibration:\n{textwrap.indent(block, '  ')}\nbuild:\n{tail}"
    )
    return project.config


def write_images(folder: Path, count: int, size: tuple[int, int] = (20, 24), start: int = 0) -> list[Path]:
    """`count` RGB PNGs of `size` (W, H), each a different flat colour."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        path = folder / f"img{index:02d}.png"
        Image.new("RGB", size, (10 * index, 100, 200)).save(path)
        paths.append(path)
    return paths


def precision_node(project: Project, cell: str = "int8") -> TaskNode:
    return api.plan([project.config], cache_dir=project.cache).graph.nodes[f"tiny/{cell}/precision"]


def precision_keys(project: Project) -> dict[str, str]:
    """What each cell's precision key holds of the calibration: its params and its files' hashes.

    (The key itself is unknown until the export has run: it also hashes the exported graph.)
    """
    the_plan = api.plan([project.config], cache_dir=project.cache)
    keys = {}
    for cell in ("fp32", "int8"):
        node = the_plan.graph.nodes[f"tiny/{cell}/precision"]
        hashes = {name: the_plan.hasher.hash_file(path) for name, path in node.files.items()}
        keys[cell] = canonical_json([node.params_json, hashes])
    return keys


def config_problems(config: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        api.load([config])
    return "\n".join(problem.render() for problem in raised.value.problems)


def key_inputs(spec: Spec) -> tuple[dict[str, object], dict[str, Path]]:
    """What the calibration puts in the precision task's key: its params (JSON) and its files."""
    calibration, files = calibrations.for_spec(spec)
    return params_json(calibration), files


def arrays_of(node: TaskNode) -> dict[str, np.ndarray]:
    """The calibration arrays the node's precision task would get."""
    return node.params.calibration.load(node.files, node.context.get("search_path", []))  # type: ignore[no-any-return]


# -- images -----------------------------------------------------------------------------------


IMAGES = "{source: images, path: calib, preprocess: {resize: 16, crop: 16, mean: [0.5, 0.5, 0.5], std: 0.25}}"


def test_images_are_file_inputs_in_sorted_order_and_preprocess_is_params(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib" / "b", 2)
    write_images(tiny_project.root / "calib", 1, start=5)
    (tiny_project.root / "calib" / "notes.txt").write_text("not an image")
    params, files = key_inputs(load_spec(configure(tiny_project, IMAGES)))
    assert list(files) == ["calibration:b/img00.png", "calibration:b/img01.png", "calibration:img05.png"]
    assert params == {
        "source": "images",
        "holdout": None,
        "input": {
            "name": "input",
            "shape": ["batch", 3, 16, 16],
            "dtype": "float32",
        },
        "samples": None,
        "preprocess": {
            "resize": 16,
            "crop": [16, 16],
            "scale": 255.0,  # resolved here, so the key holds what the task uses
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25],
            "layout": "NCHW",
        },
        "others": None,
    }


def test_samples_caps_the_images_keyed(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib", 4)
    config = configure(tiny_project, IMAGES.replace("path: calib,", "path: calib, samples: 2,"))
    _, files = key_inputs(load_spec(config))
    assert list(files) == ["calibration:img00.png", "calibration:img01.png"]


def test_changing_one_image_changes_only_the_quantized_key(tiny_project: Project) -> None:
    images = write_images(tiny_project.root / "calib", 3)
    configure(tiny_project, IMAGES)
    before = precision_keys(tiny_project)
    Image.new("RGB", (20, 24), (1, 2, 3)).save(images[1])
    after = precision_keys(tiny_project)
    assert after["fp32"] == before["fp32"]
    assert after["int8"] != before["int8"]


def test_images_arrays_are_preprocessed_in_the_inputs_layout_and_dtype(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib", 3)
    configure(tiny_project, IMAGES)
    node = precision_node(tiny_project)
    arrays = arrays_of(node)
    assert list(arrays) == ["input"]
    assert arrays["input"].shape == (3, 3, 16, 16) and arrays["input"].dtype == np.float32
    # Flat colour (10 * i, 100, 200): ((pixel / 255) - 0.5) / 0.25 per channel.
    expected = (np.array([20, 100, 200], np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(arrays["input"][2, :, 5, 5], expected, rtol=1e-5)


def test_nhwc_uint8_input_gets_raw_pixels(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib", 2, size=(16, 16))
    tiny_project.edit_config(
        "input: {shape: [batch, 3, 16, 16], dtype: float32}",
        "input: {shape: [batch, 16, 16, 3], dtype: uint8}",
    )
    tiny_project.edit_config("[1, 3, 16, 16]", "[1, 16, 16, 3]")
    tiny_project.edit_config("[2, 3, 16, 16]", "[2, 16, 16, 3]")
    tiny_project.edit_config("[4, 3, 16, 16]", "[4, 16, 16, 3]")
    configure(tiny_project, "{source: images, path: calib, preprocess: {layout: NHWC}}")
    node = precision_node(tiny_project)
    assert node.params.calibration.preprocess.scale == 1.0
    arrays = arrays_of(node)
    assert arrays["input"].shape == (2, 16, 16, 3) and arrays["input"].dtype == np.uint8
    assert arrays["input"][1, 0, 0].tolist() == [10, 100, 200]


@pytest.mark.parametrize(
    ("calibration", "words"),
    [
        ("{source: images, path: calib}", ["calibration.path", "has no images"]),
        ("{source: images, path: nowhere}", ["calibration.path", "does not exist"]),
        ("{source: images}", ["needs `path`"]),
        ("{source: images, path: calib, input: inptu}", ["calibration.input", "did you mean 'input'"]),
        (
            "{source: images, path: calib, preprocess: {resize: 16, crop: 20}}",
            ["preprocess.crop", "does not fit"],
        ),
        ("{source: images, path: calib, preprocess: {crop: 8}}", ["preprocess.crop", "8x8"]),
        ("{source: images, path: calib, preprocess: {mean: [1, 2]}}", ["preprocess.mean", "3 channel"]),
        ("{source: images, path: calib, preprocess: {layout: NHWC}}", ["preprocess.layout", "16"]),
        ("{source: npz, path: calib, preprocess: {crop: 8}}", ["calibration.preprocess", "not used by"]),
        ("{source: callable}", ["needs `function`"]),
        ("{source: callable, function: calib_dta:batches}", ["calibration.function", "calib_dta"]),
        ("{source: callable, function: 'calib_data'}", ["calibration.function", "module.path:function"]),
    ],
)
def test_bad_calibration_config_is_reported_at_load(
    tiny_project: Project, calibration: str, words: list[str]
) -> None:
    (tiny_project.root / "calib").mkdir()
    (tiny_project.root / "calib_data.py").write_text(CALIB_MODULE)
    problems = config_problems(configure(tiny_project, calibration))
    for word in words:
        assert word in problems, problems


def test_several_inputs_need_calibration_input(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib", 2, size=(16, 16))
    tiny_project.edit_config("outputs:", "  scale: {shape: [batch, 1], dtype: float32}\noutputs:")
    tiny_project.edit_config(
        "max: [4, 3, 16, 16]}", "max: [4, 3, 16, 16]}\n    scale: {min: [1, 1], opt: [2, 1], max: [4, 1]}"
    )
    problems = config_problems(configure(tiny_project, "{source: images, path: calib}"))
    assert "which one do the images feed" in problems and "input: input" in problems
    configure(tiny_project, "{source: images, path: calib, input: input, seed: 3}")
    node = precision_node(tiny_project)
    arrays = arrays_of(node)
    # The input the images do not feed gets seeded random data, one sample per image.
    assert arrays["input"].shape == (2, 3, 16, 16) and arrays["scale"].shape == (2, 1)


def test_preflight_decodes_the_first_image_against_the_input(tiny_project: Project) -> None:
    write_images(tiny_project.root / "calib", 2, size=(20, 24))  # no resize/crop: 24x20 != 16x16
    configure(tiny_project, "{source: images, path: calib}")
    with pytest.raises(ConfigError) as raised:
        preflight(api.plan([tiny_project.config], cache_dir=tiny_project.cache))
    text = str(raised.value)
    assert "calibration.preprocess" in text and "int8" in text and "axis 2: 24 != 16" in text
    (tiny_project.root / "calib" / "img00.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"calibration.path: cell\(s\) int8: cannot read calibration image"):
        preflight(api.plan([tiny_project.config], cache_dir=tiny_project.cache))


# -- callable -----------------------------------------------------------------------------------


def test_local_callable_is_keyed_by_its_package_code(tiny_project: Project) -> None:
    package = tiny_project.root / "calibpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text(CALIB_MODULE)
    (package / "helpers.py").write_text("SIZE = 2\n")
    config = configure(tiny_project, "{source: callable, function: calibpkg.data:batches, samples: 4}")
    params, files = key_inputs(load_spec(config))
    assert params == {
        "source": "callable",
        "holdout": None,
        "function": "calibpkg.data:batches",
        "package": None,
        "samples": 4,
        # precision v8: the installed packages the function's code imports, by version
        "imports": [f"numpy=={importlib.metadata.version('numpy')}"],
        "inputs": [{"name": "input", "shape": ["batch", 3, 16, 16], "dtype": "float32"}],
    }
    assert sorted(files) == [
        "calibration-code:calibpkg/__init__.py",
        "calibration-code:calibpkg/data.py",
        "calibration-code:calibpkg/helpers.py",
    ]


def test_changing_the_callable_module_changes_only_the_quantized_key(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_project.root)  # wherever the resolver looks, the module is beside the config
    module = tiny_project.root / "calib_data.py"
    module.write_text(CALIB_MODULE)
    configure(tiny_project, "{source: callable, function: calib_data:batches}")
    before = precision_keys(tiny_project)
    module.write_text(CALIB_MODULE.replace("range(3)", "range(4)"))
    after = precision_keys(tiny_project)
    assert after["fp32"] == before["fp32"] and after["int8"] != before["int8"]


def test_installed_callable_is_keyed_by_its_distribution_version(tiny_project: Project) -> None:
    from importlib.metadata import version

    config = configure(tiny_project, "{source: callable, function: yaml:safe_load}")
    params, files = key_inputs(load_spec(config))
    assert params["package"] == f"yaml=={version('PyYAML')}" and files == {}


def callable_params(function: str, samples: int | None = None) -> CallableCalibration:
    inputs = (InputSignature("input", ("batch", 3, 16, 16), "float32"),)
    return CallableCalibration(function=function, package=None, samples=samples, inputs=inputs)


def test_callable_batches_are_concatenated_and_cut_at_samples(tmp_path: Path) -> None:
    (tmp_path / "calib_mod_a.py").write_text(CALIB_MODULE)
    search = [str(tmp_path)]
    every = callable_params("calib_mod_a:batches").load({}, search)
    assert every["input"].shape == (6, 3, 16, 16)
    # An endless generator is fine with `samples`: it is stopped once there is enough.
    five = callable_params("calib_mod_a:forever", samples=5).load({}, search)
    assert five["input"].shape == (5, 3, 16, 16)


def test_preflight_checks_the_callables_first_batch(tiny_project: Project) -> None:
    (tiny_project.root / "calib_data.py").write_text(CALIB_MODULE)
    configure(tiny_project, "{source: callable, function: calib_data:wrong_dtype}")
    with pytest.raises(ConfigError) as raised:
        preflight(api.plan([tiny_project.config], cache_dir=tiny_project.cache))
    text = str(raised.value)
    assert "calibration.function: cell(s) int8: first batch of calib_data:wrong_dtype" in text
    assert "array 'input' is float64, input 'input' is float32" in text
