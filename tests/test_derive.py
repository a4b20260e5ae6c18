"""ssmbook.derive: the sympy derivations are right, and agree with the numerical code."""
import math

import numpy as np
import pytest
import sympy as sp

from ssmbook import derive, discretize


@pytest.mark.parametrize("kind", ["distinct", "jordan", "singular"])
def test_ode_solution_satisfies_ode(kind):
    r = derive.ode_solution(derive.example_matrix(kind))
    assert r["residual"] == sp.zeros(2, 1)
    assert r["initial"] == sp.zeros(2, 1)
    t = r["t"]
    assert sp.simplify(r["expAt"].diff(t) - r["A"] * r["expAt"]) == sp.zeros(2, 2)


def test_ode_solution_residual_is_not_trivially_zero():
    """A wrong solution (sign flipped in the exponent) must leave a nonzero residual."""
    r = derive.ode_solution()
    t, A = r["t"], r["A"]
    wrong = (-A * t).exp() * r["h0"]
    assert sp.simplify(wrong.diff(t) - A * wrong) != sp.zeros(2, 1)


def test_zoh_derivation_matches_closed_form_and_numerics():
    r = derive.zoh_derivation()
    assert sp.simplify(r["Bb"] - r["Bb_closed"]) == sp.zeros(2, 1)
    lam, mu = sp.symbols("lambda mu", real=True)
    vals = {lam: -0.7, mu: 0.4, r["Delta"]: 0.9, sp.Symbol("b1", real=True): 1.3,
            sp.Symbol("b2", real=True): -0.6}
    A = np.array(r["A"].subs(vals), dtype=float)
    Ab, Bb = discretize.zoh(A, np.array([1.3, -0.6]), 0.9)
    np.testing.assert_allclose(np.array(r["Ab"].subs(vals), dtype=float), Ab, rtol=1e-13)
    np.testing.assert_allclose(np.array(r["Bb"].subs(vals), dtype=float).ravel(), Bb, rtol=1e-13)


def test_zoh_derivation_singular_A():
    r = derive.zoh_derivation(derive.example_matrix("singular"))
    assert r["Bb_closed"] is None
    lam = sp.Symbol("lambda", real=True)
    vals = {lam: -1.5, r["Delta"]: 0.35, sp.Symbol("b1", real=True): 0.2, sp.Symbol("b2", real=True): 1.0}
    A = np.array(r["A"].subs(vals), dtype=float)
    _, Bb = discretize.zoh(A, np.array([0.2, 1.0]), 0.35)
    np.testing.assert_allclose(np.array(r["Bb"].subs(vals), dtype=float).ravel(), Bb, rtol=1e-13)


def test_zoh_scalar_and_its_limit():
    r = derive.zoh_scalar()
    a, b, d = r["a"], r["b"], r["Delta"]
    assert r["Bb_limit"] == d * b
    assert sp.simplify(r["Bb"].subs(a, sp.Rational(-3, 2)) - r["Bb_closed"].subs(a, sp.Rational(-3, 2))) == 0
    assert sp.simplify(r["Bb"].subs(a, 0) - d * b) == 0


@pytest.mark.parametrize("m,n", [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (2, 2), (3, 2)])
def test_pade_matches_known_formula(m, n):
    z = derive.symbols()["z"]
    P = sum(sp.Rational(math.factorial(m + n - j) * math.factorial(m),
                        math.factorial(m + n) * math.factorial(j) * math.factorial(m - j)) * z**j
            for j in range(m + 1))
    Q = sum(sp.Rational(math.factorial(m + n - j) * math.factorial(n),
                        math.factorial(m + n) * math.factorial(j) * math.factorial(n - j)) * (-z)**j
            for j in range(n + 1))
    assert sp.simplify(derive.pade_exp(m, n) - P / Q) == 0
    assert derive.local_error(derive.pade_exp(m, n))[1] == m + n


def test_rules_are_pade_approximants_with_expected_orders():
    rules = derive.discretization_rules()
    assert sp.simplify(rules["euler"][0] - derive.pade_exp(1, 0)) == 0
    assert sp.simplify(rules["backward"][0] - derive.pade_exp(0, 1)) == 0
    assert sp.simplify(rules["bilinear"][0] - derive.pade_exp(1, 1)) == 0
    z = derive.symbols()["z"]
    assert derive.local_error(rules["euler"][0]) == (z**2 / 2, 1)
    assert derive.local_error(rules["bilinear"][0]) == (-z**3 / 12, 2)
    assert derive.local_error(rules["zoh"][0]) == (0, None)


def test_rules_agree_with_numeric_diagonal_paths():
    z = derive.symbols()["z"]
    rules = derive.discretization_rules()
    a, d = np.array([-0.8, 0.3]), 0.25
    for name, fn in (("euler", discretize.euler_diag), ("bilinear", discretize.bilinear_diag),
                     ("zoh", discretize.zoh_diag)):
        ab, bb = fn(a, np.ones(2), d)
        Abar, Bfac = (sp.lambdify(z, e, "numpy") for e in rules[name])
        np.testing.assert_allclose(ab, Abar(a * d), rtol=1e-14)
        np.testing.assert_allclose(bb, d * np.broadcast_to(Bfac(a * d), (2,)), rtol=1e-14)


def test_bad_input():
    with pytest.raises(ValueError, match="A must be a square sympy Matrix"):
        derive.ode_solution(sp.Matrix([[1, 2]]))
    with pytest.raises(ValueError, match="m must be an int >= 0"):
        derive.pade_exp(-1, 2)
    with pytest.raises(ValueError, match="kind must be"):
        derive.example_matrix("weird")
