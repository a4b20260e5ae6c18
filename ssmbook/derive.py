"""Symbolic derivations (sympy) behind chapters 2 and 3.  Each function returns expressions; the
chapters and tests/test_derive.py check them.

* ``ode_solution(A)``: the matrix-exponential solution of h' = A h + B x(t) and the residual of the
  ODE (which simplifies to zero).
* ``zoh_derivation(A)``: Ā and B̄ from holding the input constant over one step of length Δ.
* ``zoh_scalar()``: the same for one state, a ≠ 0 and the limit a → 0.
* ``pade_exp(m, n)``: the [m/n] Padé approximant of eᶻ, derived by matching Taylor coefficients.
* ``discretization_rules()``: Ā(z) for Euler, backward Euler, bilinear and ZOH, with z = ΔA.
* ``local_error(R)``: leading term of eᶻ − R(z) and the resulting (global) order of accuracy.
"""
from __future__ import annotations

import sympy as sp

from . import _checks

__all__ = ["symbols", "example_matrix", "ode_solution", "zoh_derivation", "zoh_scalar",
           "pade_exp", "discretization_rules", "local_error"]


def symbols():
    """The book's symbols: t, s (time, integration variable), Δ > 0, z (= ΔA, scalar), a, b."""
    t, s = sp.symbols("t s", real=True)
    delta = sp.Symbol("Delta", positive=True)
    z = sp.Symbol("z")
    a, b = sp.symbols("a b", real=True)
    return {"t": t, "s": s, "Delta": delta, "z": z, "a": a, "b": b}


def example_matrix(kind: str = "distinct"):
    """A symbolic 2×2 state matrix.

    ``"distinct"``: [[λ, 1], [0, μ]] (two distinct eigenvalues λ ≠ μ);
    ``"jordan"``: [[λ, 1], [0, λ]] (a repeated eigenvalue; A is not diagonalizable);
    ``"singular"``: [[λ, 1], [0, 0]] (an integrator mode: A is singular).
    """
    lam, mu = sp.symbols("lambda mu", real=True)
    if kind == "distinct":
        return sp.Matrix([[lam, 1], [0, mu]])
    if kind == "jordan":
        return sp.Matrix([[lam, 1], [0, lam]])
    if kind == "singular":
        return sp.Matrix([[lam, 1], [0, 0]])
    raise ValueError(f"kind must be 'distinct', 'jordan' or 'singular', got {kind!r}")


def ode_solution(A=None):
    """Variation of constants for h' = A h + B x(t), h(0) = h0.

    Returns a dict with the symbolic pieces: ``A``, ``B`` (symbols b1..bN), ``h0`` (h01..h0N),
    ``x`` (an undefined function x(t)), ``expAt`` = exp(tA),
    ``h`` = exp(tA) (h0 + ∫_0^t exp(−sA) B x(s) ds) = exp(tA) h0 + ∫_0^t exp((t−s)A) B x(s) ds,
    ``residual`` = h' − A h − B x(t) (simplified; zero when the solution is right) and
    ``initial`` = h(0) − h0 (simplified; zero).
    """
    A = example_matrix("distinct") if A is None else _checks.sympy_square_matrix(A, "A")
    N = A.rows
    t, s = sp.symbols("t s", real=True)
    B = sp.Matrix(sp.symbols(f"b1:{N + 1}", real=True))
    h0 = sp.Matrix(sp.symbols(f"h0_1:{N + 1}", real=True))
    x = sp.Function("x")
    expAt = sp.simplify((A * t).exp())
    forcing = sp.simplify((-A * s).exp()) * B * x(s)
    F = forcing.applyfunc(lambda f: sp.Integral(f, (s, 0, t)))
    h = expAt * (h0 + F)
    residual = sp.simplify(h.diff(t) - A * h - B * x(t))
    initial = sp.simplify(h.subs(t, 0) - h0)
    return {"A": A, "B": B, "h0": h0, "x": x, "t": t, "s": s, "expAt": expAt, "h": h,
            "residual": residual, "initial": initial}


def zoh_derivation(A=None):
    """Ā and B̄ of zero-order hold, from the exact solution over one step with a held input u.

    Over [0, Δ] with x(t) = u constant:  h(Δ) = exp(ΔA) h(0) + ∫_0^Δ exp((Δ−s)A) ds B u,
    so Ā = exp(ΔA) and, substituting r = Δ − s, B̄ = ∫_0^Δ exp(rA) dr B.

    Returns a dict with ``A``, ``B``, ``Delta``, ``Ab``, ``Bb`` (the integral, evaluated entrywise)
    and, when A is invertible, ``Bb_closed`` = A⁻¹ (exp(ΔA) − I) B (else None).
    """
    A = example_matrix("distinct") if A is None else _checks.sympy_square_matrix(A, "A")
    N = A.rows
    r = sp.Symbol("r", real=True)
    delta = sp.Symbol("Delta", positive=True)
    B = sp.Matrix(sp.symbols(f"b1:{N + 1}", real=True))
    Ab = sp.simplify((A * delta).exp())
    integrand = sp.simplify((A * r).exp())
    Bb = sp.simplify(integrand.applyfunc(
        lambda f: sp.piecewise_fold(sp.integrate(f, (r, 0, delta), conds="none"))) * B)
    closed = None
    if sp.simplify(A.det()) != 0:
        closed = sp.simplify(A.inv() * (Ab - sp.eye(N)) * B)
    return {"A": A, "B": B, "Delta": delta, "Ab": Ab, "Bb": Bb, "Bb_closed": closed}


def zoh_scalar():
    """One state, h' = a h + b x: Ā = e^{aΔ}, B̄ = ∫_0^Δ e^{ar} dr · b.

    Returns a dict with ``Ab``, ``Bb`` (as sympy integrates it, a Piecewise in a),
    ``Bb_closed`` = (e^{aΔ} − 1)/a · b, and ``Bb_limit`` = lim_{a→0} Bb_closed (= Δ b).
    """
    sy = symbols()
    a, b, delta = sy["a"], sy["b"], sy["Delta"]
    r = sp.Symbol("r", real=True)
    Bb = sp.integrate(sp.exp(a * r), (r, 0, delta)) * b
    closed = (sp.exp(a * delta) - 1) / a * b
    return {"a": a, "b": b, "Delta": delta, "Ab": sp.exp(a * delta), "Bb": Bb,
            "Bb_closed": closed, "Bb_limit": sp.limit(closed, a, 0)}


def pade_exp(m: int, n: int):
    """The [m/n] Padé approximant P(z)/Q(z) of eᶻ (deg P = m, deg Q = n, Q(0) = 1).

    Derived, not looked up: the m + n + 1 unknown coefficients are fixed by asking that
    Q(z) eᶻ − P(z) = O(z^{m+n+1}), a linear system solved by sympy.  Returns the rational function.
    """
    m = _checks.positive_int(m, "m", minimum=0)
    n = _checks.positive_int(n, "n", minimum=0)
    z = symbols()["z"]
    p = sp.symbols(f"p0:{m + 1}")
    q = (1,) + sp.symbols(f"q1:{n + 1}")
    P = sum(p[j] * z**j for j in range(m + 1))
    Q = sum(q[j] * z**j for j in range(n + 1))
    series = sp.series(Q * sp.exp(z) - P, z, 0, m + n + 1).removeO()
    eqs = [sp.expand(series).coeff(z, k) for k in range(m + n + 1)]
    sol = sp.solve(eqs, list(p) + list(q[1:]), dict=True)
    if len(sol) != 1:  # pragma: no cover  (the Padé table of exp is normal: always unique)
        raise RuntimeError("Padé system has no unique solution")
    return sp.simplify((P / Q).subs(sol[0]))


def discretization_rules():
    """Ā as a function of z = ΔA (scalar form) for the classical rules, and B̄/Δb for a ≠ 0.

    Returns ``{name: (Abar(z), Bbar_over_delta_b(z))}`` for ``"euler"`` (forward), ``"backward"``
    (backward Euler), ``"bilinear"`` and ``"zoh"``.  The B̄ factor multiplies Δ·b.
    """
    z = symbols()["z"]
    return {
        "euler": (1 + z, sp.Integer(1)),
        "backward": (1 / (1 - z), 1 / (1 - z)),
        "bilinear": ((1 + z / 2) / (1 - z / 2), 1 / (1 - z / 2)),
        "zoh": (sp.exp(z), (sp.exp(z) - 1) / z),
    }


def local_error(R, order: int = 6):
    """Leading term of eᶻ − R(z) around z = 0 and the global order of accuracy.

    If eᶻ − R(z) = c z^{p+1} + O(z^{p+2}), one step makes an error O(Δ^{p+1}) and T/Δ steps
    accumulate O(Δ^p): the method has order p.  Returns ``(leading_term, p)``; for R = eᶻ
    returns ``(0, None)``.
    """
    order = _checks.positive_int(order, "order")
    if isinstance(R, str) or not isinstance(sp.sympify(R), sp.Expr):
        raise ValueError(f"R must be a sympy expression in z (a rational approximant of exp(z)), "
                         f"got {type(R).__name__}")
    z = symbols()["z"]
    err = sp.series(sp.exp(z) - R, z, 0, order + 1).removeO()
    err = sp.expand(err)
    if err == 0:
        return sp.Integer(0), None
    k = min(term.as_poly(z).degree() if term.has(z) else 0 for term in sp.Add.make_args(err))
    return err.coeff(z, k) * z**k, k - 1
