"""Summaries: Keras' numbers for the questions users ask, and Keras' own summary counts."""

import keras
import pytest
from flax import nnx

import jaxheads
import jaxheads.nnx as jnnx
from jaxheads import layers as L
from jaxheads.cli import main


def _totals(text):
    lines = text.splitlines()
    return {
        line.split(":")[0]: int(line.split(":")[1].split("(")[0].replace(",", ""))
        for line in lines
        if "params:" in line
    }


@pytest.mark.parametrize(
    "model,shape,expected",
    [
        (L.Dense(4096), (None, 7, 7, 1024), 4_198_400),
        (L.serial(L.Flatten(), L.Dense(4096)), (None, 7, 7, 1024), 205_524_992),
        (L.serial(L.Dense(4096), L.Dense(30)), (None, 7, 7, 1024), 4_321_310),
        (L.Conv2D(1024, 3, padding="same"), (None, 7, 7, 1024), 9_438_208),
        (L.GlobalAveragePooling2D(), (16, 16, 16, 64), 0),
    ],
)
def test_quoted_numbers(model, shape, expected):
    assert _totals(jaxheads.summary(model, shape))["Total params"] == expected


def test_percell_dense_rows_and_shapes():
    text = jaxheads.summary(L.serial(L.Dense(4096), L.Dense(30)), (None, 7, 7, 1024))
    assert "(None, 7, 7, 4096)" in text and "4,198,400" in text
    assert "(None, 7, 7, 30)" in text and "122,910" in text


def test_counts_match_keras_model_with_batchnorm():
    model = L.serial(
        L.Conv2D(16, 3, use_bias=False),
        L.BatchNormalization(),
        L.LeakyReLU(),
        L.GlobalAveragePooling2D(),
        L.Dense(10),
    )
    km = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    totals = _totals(jaxheads.summary(model, (None, 32, 32, 3)))
    non_trainable = sum(
        int(
            w.shape.num_elements()
            if hasattr(w.shape, "num_elements")
            else __import__("math").prod(w.shape)
        )
        for w in km.non_trainable_weights
    )
    assert totals["Total params"] == km.count_params()
    assert totals["Non-trainable params"] == non_trainable == 32
    assert totals["Trainable params"] == km.count_params() - non_trainable


def test_summary_of_nnx_module_and_graph_wiring():
    module = jnnx.Dense(1024, 4096, rngs=nnx.Rngs(0))
    assert _totals(jaxheads.summary(module))["Total params"] == 4_198_400
    wrapped = jnnx.LayerModule(L.Dense(4096), (None, 7, 7, 1024), rngs=nnx.Rngs(0))
    assert "(None, 7, 7, 4096)" in jaxheads.summary(wrapped)
    g = L.graph(
        [
            ("a", L.Conv2D(4, 1)),
            ("b", L.MaxPooling2D(2), "input"),
            ("c", L.Conv2D(4, 2, strides=2), "a"),
            ("cat", L.Concatenate(), ("b", "c")),
        ]
    )
    text = jaxheads.summary(g, (None, 8, 8, 3))
    assert "Connected to" in text and "b, c" in text
    nested = L.serial(L.serial(L.Dense(3), L.Dense(4), name="block"), L.Dense(2))
    assert "block/dense_1 (Dense)" in jaxheads.summary(nested, (None, 5), expand_nested=True)
    assert "block (Sequential)" in jaxheads.summary(nested, (None, 5))


def test_summary_errors():
    with pytest.raises(ValueError, match="summary: expected an input_shape"):
        jaxheads.summary(L.Dense(3))
    with pytest.raises(ValueError, match="summary: expected a jaxheads Layer or a Flax NNX"):
        jaxheads.summary(object())


def test_cli_summary(capsys):
    assert main(["summary", "yolov1-percell-head"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 4,321,310" in out
    assert main(["summary", "--list"]) == 0
    assert "yolov1-fc-head" in capsys.readouterr().out
    assert main(["summary", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "expected a model in" in err and "yolov1-fc-head" in err
