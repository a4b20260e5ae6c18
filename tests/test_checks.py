"""Unit tests of the shared argument validators in ``ssmbook._checks``.

For each validator: a good value passes and comes back in the form callers use (type, dtype,
shape), and each kind of bad value raises the documented error class with a message whose
subject is the argument's name ("<name> must ...").
"""
import re

import numpy as np
import pytest
import sympy as sp
import torch

from ssmbook import _checks as C


def raises(exc, name, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` raises ``exc`` with ``name`` as the subject of the message."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert re.search(rf"(?<![\w.]){re.escape(name)}(\[[^\]]*\])?(\s*\([^)]*\))?\s+must", msg), msg
    return msg


ATE = C.ArgumentTypeError


def test_argument_type_error_is_both_type_and_value_error():
    assert issubclass(ATE, TypeError) and issubclass(ATE, ValueError)


def test_describe():
    assert C.describe(np.zeros((2, 3))) == "shape (2, 3), dtype float64"
    assert C.describe(torch.zeros(2, dtype=torch.float32)) == "shape (2,), dtype torch.float32, device cpu"
    assert C.describe(3) == "int 3"
    assert C.describe([1]) == "list"


# ------------------------------------------------------------------------------------ scalars
def test_positive_int():
    v = C.positive_int(np.int64(3), "n")
    assert v == 3 and type(v) is int
    assert C.positive_int(0, "n", minimum=0) == 0
    assert C.positive_int(5, "n", maximum=5) == 5
    for bad in (1.0, True, "2", None):
        raises(ATE, "n", C.positive_int, bad, "n")
    raises(ValueError, "n", C.positive_int, 0, "n")
    raises(ValueError, "n", C.positive_int, 1, "n", minimum=2)
    assert "<= 5" in raises(ValueError, "n", C.positive_int, 6, "n", maximum=5)


def test_real_scalar():
    v = C.real_scalar(np.float32(0.5), "x", low=0, high=1)
    assert v == 0.5 and type(v) is float
    assert C.real_scalar(np.array(2.0), "x") == 2.0
    assert C.real_scalar(torch.tensor(2.0), "x") == 2.0
    for bad in ("1", True, [1.0], 1j):
        raises(ATE, "x", C.real_scalar, bad, "x")
    for bad in (float("nan"), float("inf")):
        raises(ValueError, "x", C.real_scalar, bad, "x")
    assert "> 0" in raises(ValueError, "x", C.real_scalar, 0.0, "x", low=0, low_open=True)
    raises(ValueError, "x", C.real_scalar, 1.5, "x", high=1)
    raises(ValueError, "x", C.real_scalar, 1.0, "x", high=1, high_open=True)


def test_probability():
    assert C.probability(0, "p") == 0.0 and C.probability(1, "p") == 1.0
    assert "[0, 1]" in raises(ValueError, "p", C.probability, 1.5, "p")
    raises(ValueError, "p", C.probability, -0.1, "p")
    raises(ATE, "p", C.probability, "0.5", "p")


def test_positive_scalar():
    assert C.positive_scalar(np.array(0.25), "delta") == 0.25
    raises(ATE, "delta", C.positive_scalar, "0.1", "delta")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        raises(ValueError, "delta", C.positive_scalar, bad, "delta")


def test_one_of():
    assert C.one_of("b", "mode", ("a", "b")) == "b"
    assert "('a', 'b')" in raises(ValueError, "mode", C.one_of, "c", "mode", ("a", "b"))
    raises(ValueError, "mode", C.one_of, 1, "mode", ("a", "b"))
    assert C.one_of(2, "k", (1, 2)) == 2


def test_sizes():
    assert C.sizes(3, "t") == 3
    assert C.sizes(sp.Symbol("L"), "t") == sp.Symbol("L")
    raises(ATE, "t", C.sizes, "3", "t")
    raises(ATE, "t", C.sizes, sp.Symbol("L"), "t", allow_symbols=False)
    raises(ValueError, "t", C.sizes, 2.5, "t")
    raises(ValueError, "t", C.sizes, [1, -1], "t")


def test_module():
    m = torch.nn.Linear(2, 2)
    assert C.module(m, "model") is m
    raises(ATE, "model", C.module, lambda x: x, "model")
    assert "(tokens -> logits)" in raises(ATE, "model", C.module, 3, "model", " (tokens -> logits)")


def test_flag():
    assert C.flag(np.bool_(True), "f") is True
    assert C.flag(None, "f", none_ok=True) is None
    raises(ATE, "f", C.flag, "yes", "f")
    raises(ATE, "f", C.flag, 1, "f")
    assert "or None" in raises(ATE, "f", C.flag, 0, "f", none_ok=True)


# ------------------------------------------------------------------------------------ numpy
def test_array():
    a = C.array([[1, 2]], "x", ndim=2)
    assert a.dtype == np.float64 and a.shape == (1, 2)
    assert C.array([1j], "x", complex_ok=True).dtype == np.complex128
    assert C.array([], "x", min_size=0).shape == (0,)
    assert C.array([-np.inf, 0.0], "x", allow_neg_inf=True)[0] == -np.inf
    assert C.array([np.inf], "x", finite=False)[0] == np.inf
    raises(ATE, "x", C.array, torch.zeros(2), "x")
    raises(ATE, "x", C.array, ["a"], "x")
    raises(ATE, "x", C.array, [True], "x")
    raises(ATE, "x", C.array, [1j], "x")
    raises(ATE, "x", C.array, [[1.0], [1.0, 2.0]], "x")            # ragged
    assert "(N, N)" in raises(ValueError, "x", C.array, [1.0], "x", ndim=2, shape_doc="(N, N)")
    assert "(3,)" in raises(ValueError, "x", C.array, [1.0, 2.0], "x", shape=(3,))
    raises(ValueError, "x", C.array, [], "x")
    raises(ValueError, "x", C.array, [np.nan], "x")
    raises(ValueError, "x", C.array, [np.nan], "x", finite=False)   # NaN is never a value
    raises(ValueError, "x", C.array, [np.inf], "x", allow_neg_inf=True)


def test_square_matrix():
    A = C.square_matrix([[1, 0], [0, 1]], "A")
    assert A.dtype == np.float64 and A.shape == (2, 2)
    assert C.square_matrix(np.zeros((0, 0)), "A", min_size=0).shape == (0, 0)
    assert C.square_matrix([[1j]], "A", complex_ok=True).dtype == np.complex128
    for bad in ([1.0, 2.0], np.ones((2, 3)), np.ones((2, 2, 2))):
        assert "square matrix of shape (N, N)" in raises(ValueError, "A", C.square_matrix, bad, "A")
    assert "N >= 1" in raises(ValueError, "A", C.square_matrix, np.zeros((0, 0)), "A")
    raises(ATE, "A", C.square_matrix, [["a"]], "A")
    raises(ValueError, "A", C.square_matrix, [[np.nan]], "A")


def test_vector_or_matrix():
    assert C.vector_or_matrix([1, 2], "B", 2).shape == (2,)
    assert C.vector_or_matrix(np.ones((2, 3)), "B", 2).shape == (2, 3)
    assert C.vector_or_matrix(np.ones((4, 2)), "C", 2, axis=-1).shape == (4, 2)
    assert "with N = 2" in raises(ValueError, "B", C.vector_or_matrix, np.ones(3), "B", 2)
    assert "(P, N)" in raises(ValueError, "C", C.vector_or_matrix, np.ones((2, 3)), "C", 2, axis=-1)
    raises(ValueError, "B", C.vector_or_matrix, np.ones((2, 2, 2)), "B", 2)
    raises(ATE, "B", C.vector_or_matrix, [1j, 1j], "B", 2)


def test_sympy_square_matrix():
    A = sp.Matrix([[1, 2], [3, 4]])
    assert C.sympy_square_matrix(A, "A") is A
    raises(ATE, "A", C.sympy_square_matrix, np.eye(2), "A")
    assert "(2, 3)" in raises(ValueError, "A", C.sympy_square_matrix, sp.ones(2, 3), "A")


def test_time_grid():
    t = C.time_grid([0, 1, 3], "t", increasing=True)
    assert t.dtype == np.float64 and t.shape == (3,)
    assert C.time_grid([1.0, 0.0], "t").shape == (2,)                # any order without increasing
    for bad in ([], np.ones((2, 2)), 1.0):
        raises(ValueError, "t", C.time_grid, bad, "t")
    assert "t[1]" in raises(ValueError, "t", C.time_grid, [0.0, 1.0, 1.0], "t", increasing=True)
    raises(ValueError, "t", C.time_grid, [0.0, np.nan], "t")


def test_probabilities():
    P = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert C.probabilities(P, "A", "rows") is P
    C.probabilities(np.array([0.5, 0.5 + 5e-9]), "pi", "a vector")           # within PROB_ATOL
    assert "(row 1)" in raises(ValueError, "A", C.probabilities, np.array([[0.5, 0.5], [0.3, 0.8]]), "A", "rows")
    assert "non-negative" in raises(ValueError, "A", C.probabilities, np.array([1.1, -0.1]), "A", "x")
    raises(ValueError, "pi", C.probabilities, np.array([0.5, 0.5 + 2e-8]), "pi", "a vector")


def test_probability_vector():
    p = C.probability_vector([0, 1], "pi", 2)
    assert p.dtype == np.float64 and p.shape == (2,)
    assert "(2,)" in raises(ValueError, "pi", C.probability_vector, [1.0], "pi", 2)
    raises(ValueError, "pi", C.probability_vector, [[0.5, 0.5]], "pi", 2)
    raises(ValueError, "pi", C.probability_vector, [0.6, 0.6], "pi", 2)
    raises(ValueError, "pi", C.probability_vector, [0.5, np.nan], "pi", 2)
    raises(ATE, "pi", C.probability_vector, ["a", "b"], "pi", 2)


def test_index_array():
    v = C.index_array([0, 2, 1], "obs", 3)
    assert v.dtype == np.int64 and v.tolist() == [0, 2, 1]
    assert C.index_array(np.array([], dtype=np.int64), "z", 3, min_size=0).shape == (0,)
    raises(ValueError, "obs", C.index_array, [[0]], "obs", 3)
    assert "T >= 1" in raises(ValueError, "obs", C.index_array, np.array([], dtype=np.int64), "obs", 3)
    raises(ATE, "obs", C.index_array, [0.0, 1.0], "obs", 3)
    raises(ATE, "obs", C.index_array, [True], "obs", 3)
    msg = raises(ValueError, "obs", C.index_array, [0, 3], "obs", 3, what="symbols", bound_doc="M = 3")
    assert "symbols in [0, 3) (M = 3), got 3" in msg
    assert "got -1" in raises(ValueError, "obs", C.index_array, [-1], "obs", 3)


# ------------------------------------------------------------------------------------ torch
def test_tensor():
    x = torch.zeros(2, 3)
    assert C.tensor(x, "x", ndim=2, shape=(2, 3)) is x
    assert C.tensor(torch.zeros(2, dtype=torch.complex64), "x", complex_ok=True) is not None
    assert C.tensor(torch.zeros(2, dtype=torch.int64), "x", integer=True) is not None
    raises(ATE, "x", C.tensor, np.zeros(2), "x")
    raises(ATE, "x", C.tensor, torch.zeros(2, dtype=torch.int64), "x")
    raises(ATE, "x", C.tensor, torch.zeros(2, dtype=torch.complex64), "x")
    raises(ATE, "x", C.tensor, torch.zeros(2), "x", integer=True)
    assert "(b, L)" in raises(ValueError, "x", C.tensor, x, "x", ndim=3, shape_doc="(b, L)")
    raises(ValueError, "x", C.tensor, x, "x", shape=(3, 2))
    assert "batch >= 1" in raises(ValueError, "x", C.tensor, torch.zeros(0, 3), "x",
                                  min_sizes={0: ("batch", 1)}, shape_doc="(batch, d)")
    raises(ATE, "x", C.tensor, x, "x", like=torch.zeros(1, dtype=torch.float64))


def test_finite():
    x = torch.tensor([0.0, -float("inf")])
    assert C.finite(x[:1], "x") is not None
    assert C.finite(x, "x", allow_neg_inf=True) is x
    raises(ValueError, "x", C.finite, x, "x")
    raises(ValueError, "x", C.finite, torch.tensor([float("nan")]), "x", allow_neg_inf=True)
    raises(ValueError, "x", C.finite, torch.tensor([float("inf")]), "x", allow_neg_inf=True)


def test_positive_entries():
    C.positive_entries(torch.tensor([0.1, 2.0]), "delta")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert "a step size" in raises(ValueError, "delta", C.positive_entries,
                                       torch.tensor([1.0, bad]), "delta", "a step size")


def test_same_device_and_dtype():
    a = torch.zeros(2)
    C.same_device(torch.zeros(3), "b", a, "a")
    C.same_dtype_device(torch.zeros(3), "b", a, "a")
    assert "dtype of a" in raises(ATE, "b", C.same_dtype_device, torch.zeros(3, dtype=torch.float64), "b", a, "a")
    C.same_dtype_device(torch.zeros(3, dtype=torch.int64), "b", a, "a")   # an index tensor keeps its dtype


def test_same_layout():
    a = torch.zeros(3, 4)
    b = torch.ones(3, 4)
    assert C.same_layout(b, "b", a, "a", shape_doc="(..., L)") is b
    assert "(..., L) = (3, 4)" in raises(ValueError, "b", C.same_layout, torch.ones(3, 5), "b", a, "a",
                                         shape_doc="(..., L)")
    raises(ATE, "b", C.same_layout, [1.0], "b", a, "a")
    raises(ATE, "b", C.same_layout, b.double(), "b", a, "a")


class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))


def test_module_input():
    m = _Module()
    x = torch.zeros(2, 5, 4)
    assert C.module_input(x, "x", m, ndim=3, shape_doc="(b, L, 4)", last=4) is x
    raises(ValueError, "x", C.module_input, torch.zeros(2, 5, 3), "x", m, ndim=3, shape_doc="(b, L, 4)", last=4)
    raises(ValueError, "x", C.module_input, torch.zeros(2, 4), "x", m, ndim=3, shape_doc="(b, L, 4)")
    raises(ValueError, "x", C.module_input, torch.zeros(0, 5, 4), "x", m, ndim=3, shape_doc="(b, L, 4)")
    raises(ValueError, "x", C.module_input, x, "x", m, ndim=3, shape_doc="(b, L, 4)", axis_sizes={1: 6})
    raises(ATE, "x", C.module_input, x.double(), "x", m, ndim=3, shape_doc="(b, L, 4)")


def test_token_ids():
    t = torch.tensor([[0, 4]])
    assert C.token_ids(t, "tokens", 5, ndim=2, shape_doc="(b, L)") is t
    assert "[0, vocab_size=5)" in raises(ValueError, "tokens", C.token_ids, t + 1, "tokens", 5, ndim=2,
                                         shape_doc="(b, L)")
    raises(ValueError, "tokens", C.token_ids, t - 1, "tokens", 5, ndim=2, shape_doc="(b, L)")
    raises(ValueError, "tokens", C.token_ids, t[:, :0], "tokens", 5, ndim=2, shape_doc="(b, L)")
    raises(ATE, "tokens", C.token_ids, t.float(), "tokens", 5, ndim=2, shape_doc="(b, L)")
    raises(ValueError, "tokens", C.token_ids, t[0], "tokens", 5, ndim=2, shape_doc="(b, L)")


def test_state_batch():
    C.state_batch((2, 3), 2, "state", (2, 3))
    assert "built for batch 4" in raises(ValueError, "state", C.state_batch, (4, 3), 2, "state", (2, 3))
    msg = raises(ValueError, "state", C.state_batch, (2, 5), 2, "state", (2, 3))
    assert "built for batch" not in msg
