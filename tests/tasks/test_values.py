"""Value generators (trtbuild/tasks/values.py) on real numpy arrays, and random calibration using them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from trtbuild.errors import TaskError
from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import Choice, Constant, Integers, Mask, NpzValues, TensorSpec
from trtbuild.tasks import calibration
from trtbuild.tasks.values import array_problems, generated_arrays, npz_files


def generate(tensor: TensorSpec, shape: list[int], files: dict[str, Path] | None = None) -> np.ndarray:
    return generated_arrays([tensor], {tensor.name: shape}, seed=0, files=files or {})[tensor.name]


def test_mask_rows_are_a_valid_prefix_never_all_padding() -> None:
    mask = generate(TensorSpec("mask", ("batch", "seq"), "int64", Mask()), [400, 5])
    assert mask.dtype == np.int64
    lengths = mask.sum(axis=1)
    assert lengths.min() == 1 and lengths.max() == 5  # from one token to the whole row
    assert (mask == (np.arange(5) < lengths[:, None])).all()  # ones first, then zeros


def test_mask_valid_lengths_are_clipped_to_the_row_and_any_dtype_works() -> None:
    tensor = TensorSpec("mask", ("batch", 1, "seq"), "float16", Mask(valid=(2, 100)))
    mask = generate(tensor, [300, 1, 4])
    assert mask.dtype == np.float16 and set(np.unique(mask)) == {0.0, 1.0}
    assert set(mask.sum(axis=-1).ravel()) == {2, 3, 4}
    boolean = generate(TensorSpec("mask", ("seq",), "bool", Mask()), [3])
    assert boolean.dtype == np.bool_ and boolean[0]


def test_choice_constant_and_integers() -> None:
    chosen = generate(TensorSpec("kind", ("n",), "int32", Choice((3, 5, 7))), [300])
    assert chosen.dtype == np.int32 and set(chosen) == {3, 5, 7}
    constant = generate(TensorSpec("flag", (2, 2), "float32", Constant(1)), [2, 2])
    assert constant.dtype == np.float32 and (constant == 1.0).all()
    ids = generate(TensorSpec("ids", ("n",), "int64", Integers(0, 30522)), [1000])
    assert ids.min() >= 0 and ids.max() < 30522 and len(set(ids)) > 900


def test_npz_values_take_the_leading_part_and_repeat_size_one_axes(tmp_path: Path) -> None:
    np.savez(tmp_path / "v.npz", ids=np.arange(12).reshape(3, 4), row=np.arange(4)[None, :])
    files = {"values:v.npz": tmp_path / "v.npz"}
    ids = generate(TensorSpec("ids", ("batch", "seq"), "int64", NpzValues("v.npz", "ids")), [2, 3], files)
    np.testing.assert_array_equal(ids, [[0, 1, 2], [4, 5, 6]])
    row = generate(TensorSpec("pos", ("batch", "seq"), "int64", NpzValues("v.npz", "row")), [3, 2], files)
    np.testing.assert_array_equal(row, [[0, 1]] * 3)
    with pytest.raises(TaskError, match=r"has 3 along axis 0 \('batch'\), a sample takes up to 5"):
        generate(TensorSpec("ids", ("batch", "seq"), "int64", NpzValues("v.npz", "ids")), [5, 3], files)


def test_npz_array_problems_name_the_array_and_what_is_wrong() -> None:
    values = NpzValues("m.npz", "mask")
    tensor = TensorSpec("mask", ("batch", 8), "int64", values)
    archive = {"mask": np.ones((2, 7), np.int32)}
    assert array_problems(tensor, values, archive, [4, 8]) == [
        "array 'mask' of m.npz (input 'mask') is int32, the input is int64",
        "array 'mask' of m.npz (input 'mask') has 2 along axis 0 ('batch'), a sample takes up to 4",
        "array 'mask' of m.npz (input 'mask') has 7 along axis 1, fixed at 8 in the input's shape",
    ]
    assert "has no array 'mask'" in array_problems(tensor, values, {}, [4, 8])[0]


def test_random_calibration_makes_masks_with_the_inputs_generators(tmp_path: Path) -> None:
    np.savez(tmp_path / "pos.npz", pos=np.arange(6)[None, :])
    config = tmp_path / "c.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            model: {name: m, source: "json:JSONDecoder"}
            inputs:
              ids: {shape: [batch, seq], dtype: int64, values: {kind: integers, low: 0, high: 100}}
              mask: {shape: [batch, seq], dtype: int64, values: {kind: mask}}
              pos: {shape: [batch, seq], dtype: int64, values: {kind: npz, path: pos.npz}}
            outputs: [y]
            profiles:
              default:
                ids: {min: [1, 1], opt: [1, 6], max: [4, 6]}
                mask: {min: [1, 1], opt: [1, 6], max: [4, 6]}
                pos: {min: [1, 1], opt: [1, 6], max: [4, 6]}
            precision: int8
            calibration: {source: random, samples: 64}
            """
        )
    )
    spec = load_spec(config)
    source, files = calibration.for_spec(spec)
    assert files == npz_files(spec) == {"values:pos.npz": tmp_path / "pos.npz"}
    assert source.preflight(spec, files, []) == []
    arrays = source.calibration_arrays(files, [])
    assert arrays["mask"].shape == (64, 6) and arrays["mask"].sum(axis=1).min() >= 1
    assert arrays["ids"].max() < 100
    np.testing.assert_array_equal(arrays["pos"], np.tile(np.arange(6), (64, 1)))
