"""Captions, labels and alt text for the figures the chapters draw (myst-nb cell metadata).

    python scripts/figure_metadata.py          # write the metadata into book/*.ipynb
    python scripts/figure_metadata.py --check  # exit 1 if a notebook lacks it

Only cell metadata is touched (``cell.metadata["mystnb"] = {"figure": {"caption", "name"},
"image": {"alt"}}``); sources and everything else stay as they are, so the script can be re-run
after chapter edits.  A cell is found by its id and must still contain the snippet given below
(a piece of the code that draws the figure); a cell that does not contain it is reported and left
alone rather than captioned wrongly.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]

# notebook -> [(cell id, snippet of its source, figure name, caption, alt text)]
FIGURES = {
    "01_hmm": [
        ("c014", "textbook forward pass underflows", "fig-ch1-underflow",
         "The log-likelihood of a growing sequence of rolls: the textbook forward pass underflows "
         "to zero (the dashed line marks where), the scaled forward pass keeps going.",
         "Line plot of log10 of the likelihood against the number of rolls. Both curves fall "
         "linearly; the textbook forward pass stops at the dashed vertical line where it reaches "
         "the smallest float64 (dotted horizontal line), while the scaled forward pass continues "
         "below it."),
        ("c027", "Decoding the dishonest casino", "fig-ch1-casino",
         "Decoding the dishonest casino: the rolls (sixes highlighted), the stretches where the "
         "loaded die was really used (shaded), the posterior probability of the loaded die and "
         "the Viterbi path.",
         "Two stacked panels over 300 rolls. Top: each roll as a vertical bar, sixes in red. "
         "Bottom: the posterior probability of the loaded die and the dashed Viterbi path, both "
         "rising inside the shaded stretches where the loaded die was used."),
        ("c029", "Decoding accuracy vs how loaded", "fig-ch1-accuracy",
         "Decoding accuracy of posterior decoding and Viterbi as the loaded die favours six more "
         "strongly; with identical dice both sit at the 'always fair' baseline of 2/3.",
         "Line plot of accuracy against the probability of a six on the loaded die. Posterior "
         "decoding and Viterbi start at the dotted 2/3 baseline for a fair die and rise as the "
         "die becomes more loaded."),
    ],
    "02_continuous_ssm": [
        ("c015", 'title="eigenvalues of A"', "fig-ch2-springs",
         "Impulse responses of the spring systems (left) and the eigenvalues of their state "
         "matrices (right): the real parts set the decay, the imaginary parts the oscillation.",
         "Left: impulse responses K(t) of several springs over time, oscillating and decaying, "
         "with the dotted exponential envelope of the damped spring. Right: the eigenvalues of "
         "each spring's matrix A in the complex plane, left of the imaginary axis."),
        ("c025", "tails are straight lines", "fig-ch2-memory",
         "Memory is set by the eigenvalues: impulse-response tails decay at the rate "
         "min |Re λ| (left), predicted against measured for 40 random systems (right).",
         "Left: absolute impulse responses on a log scale, each tail a straight line matching its "
         "dotted slope. Right: log-log scatter of measured against predicted tail rate for 40 "
         "random systems, lying on the dotted diagonal."),
        ("c033", "three views, one output", "fig-ch2-three-views",
         "One input, three ways to compute the output: the continuous ODE solution, the "
         "recurrence and the convolution give the same curve.",
         "Line plot of a held step input in grey and the outputs of the ODE solver, the recurrent "
         "form and the convolutional form, which lie on top of each other."),
    ],
    "03_discretization": [
        ("c004", '"zero-order hold"', "fig-ch3-hold",
         "Zero-order hold: the continuous input is sampled every Δ and held constant until the "
         "next sample; a smaller Δ (right) follows the signal more closely.",
         "Two panels, Δ = 0.6 and Δ = 0.15, each showing a smooth signal, its samples as dots and "
         "the staircase that holds each sample until the next one; the right staircase is finer."),
        ("c019", "global error at T = 4", "fig-ch3-error",
         "Global error at T = 4 against the step size: Euler converges at order 1, the bilinear "
         "rule at order 2, and ZOH is exact for a held input (rounding error only).",
         "Log-log plot of error against step size Δ for Euler, bilinear and ZOH, with dotted and "
         "dashed reference slopes Δ and Δ squared; Euler follows the first, bilinear the second, "
         "ZOH stays at rounding level."),
        ("c026", "what the state remembers", "fig-ch3-memory",
         "What the state remembers of one token after 40 noise tokens: a small fixed Δ barely "
         "registers it, a large fixed Δ copies every input, the selective Δ keeps it.",
         "Line plot of the state over 46 steps for an input with a token at step 5 followed by "
         "noise. The small fixed step stays near zero, the large fixed step lies on the grey "
         "input curve, and the selective schedule jumps at the token and then decays slowly, "
         "staying near two thirds."),
    ],
    "04_s4": [
        ("c4deep1", "random position: depth helps", "fig-ch4-deep",
         "Training accuracy on the random-position task: the one-layer LTI model stays near "
         "chance, the two-layer model learns the task.",
         "Line plot of moving-average training accuracy against the training step for one and two "
         "S4D layers, with a dotted chance line. The one-layer curve stays low near chance; the "
         "two-layer curve climbs to almost 1."),
        ("c008", "reversed kernel", "fig-ch4-causal-conv",
         "A causal convolution step by step: for t = 1, 4, 7 the reversed kernel slides under the "
         "zero-padded input and y_t is the sum of the products.",
         "Two rows of three bar charts. Top: the zero-padded input with the window of the current "
         "output highlighted, for t = 1, 4 and 7. Bottom: the decaying, oscillating kernel "
         "reversed under that window."),
        ("c016", "history rebuilt from the state", "fig-ch4-legs",
         "HiPPO-LegS memory: the history rebuilt from the state at t = 1 with N = 16, 32 and 64 "
         "coefficients (left), and the reconstruction error against N (right).",
         "Left: a wiggly signal and its reconstructions from 16, 32 and 64 Legendre coefficients, "
         "the 64-term one tracing it closely. Right: the RMS reconstruction error on a log scale "
         "falling as the state size N grows."),
        ("c028", "one S4D layer, batch 16", "fig-ch4-timing",
         "Time of one S4D layer in recurrent mode and in convolution mode (kernel + FFT) against "
         "the sequence length, on one CPU thread.",
         "Log-log plot of seconds against sequence length, one line for the recurrent mode and "
         "one for the convolution mode."),
        ("c033", "learned kernels, fixed position", "fig-ch4-marker-copy",
         "A small S4 classifier on the marker-copy task: it learns when the answer sits at a "
         "fixed position and stays at chance when the position is random (left); its learned "
         "kernel puts weight at the lag of the answer (right).",
         "Left: training accuracy curves, the fixed-position run climbing well above the dotted "
         "chance line and the random-position run staying near it. Right: the mean absolute "
         "learned kernel against the lag, with a peak at the dotted line marking the answer's lag."),
    ],
    "05_selective": [
        ("c019", '"selective, input a"', "fig-ch5-matrices",
         "The matrix that maps inputs to outputs: the same for every input in an LTI model, "
         "different for two inputs a and b in the selective model.",
         "Three heat maps of lower-triangular matrices, output position against input position: "
         "the LTI matrix has constant diagonals; the selective matrices for inputs a and b differ "
         "from it and from each other."),
        ("c045", "which data token", "fig-ch5-training",
         "Training on the selective task: accuracy during training (left) and test accuracy for "
         "each data token to recall (right), per model.",
         "Left: running-mean training accuracy of each model against the training step, with a "
         "dotted chance line. Right: grouped bars of test accuracy for each data token position "
         "and each model."),
    ],
    "06_parallel_scan": [
        ("c018", 'ax1.set_title("work / L")', "fig-ch6-work-depth",
         "Work per element (left) and depth (right) of the sequential, Hillis–Steele and Blelloch "
         "scans against the length L, counted while scanning.",
         "Left: combines per element against L on a log2 axis: constant for the sequential and "
         "Blelloch scans, growing with log L for Hillis–Steele. Right: levels against L on log2 "
         "axes: linear for the sequential scan, logarithmic for the two parallel scans."),
        ("c032", "plot_time_per_token_channel(ax1", "fig-ch6-time",
         "Measured time per token and channel of the selective-scan implementations on a GPU "
         "(float32 left, bfloat16 right, forward pass), from the committed benchmark results.",
         "Two log-scale panels of time per token and channel against the problem size for each "
         "implementation, float32 on the left and bfloat16 on the right; the fused Triton and "
         "official kernels sit far below the torch implementations."),
        # this cell also displays a Markdown table, which myst-nb would put in the same figure and
        # caption: alt text only (caption None)
        ("c034", "benchmarks.plot_bandwidth(ax1", "fig-ch6-bandwidth", None,
         "Two panels of achieved memory bandwidth against the problem size for the fused "
         "kernels, forward pass on the left and forward plus backward on the right."),
        ("c036", "benchmarks.plot_time_per_token(ax, run)", "fig-ch6-decode",
         "Time to generate one token against the context length: the Mamba step stays flat while "
         "attention with a KV cache grows with the context.",
         "Plot of milliseconds per generated token against the context length: the Mamba curves "
         "are flat, the attention curve rises."),
    ],
    "07_mambaout": [
        ("c014", "influence_matrix(f, L_demo, D_demo)", "fig-ch7-influence",
         "Which input tokens can change which output tokens, for four token mixers.",
         "Four 12 by 12 grids of output token against input token, filled where the input "
         "influences the output: full for fully visible attention, lower triangular for causal "
         "attention and the Mamba block, a narrow band for the gated CNN with kernel size 3."),
        ("c020", "Memory of one layer", "fig-ch7-memory",
         "Numbers kept per layer while reading a sequence: attention's KV cache grows with the "
         "tokens seen, Mamba's state stays fixed; the dotted line marks where they cross.",
         "Log-log plot of numbers kept per layer against tokens seen: a rising straight line for "
         "the KV cache and a flat line for the Mamba state, crossing at the dotted vertical line."),
        ("c038", "dots are seeds, squares mean", "fig-ch7-digits",
         "Test accuracy on 8×8 digits for each model, one dot per seed, squares the mean ± one "
         "standard deviation.",
         "Strip plot of test accuracy in percent for each model, with a dot per seed and a square "
         "with error bars beside it; the gated CNN models sit above the ViT models."),
    ],
    "08_rwkv": [
        ("c012", '"softmax attention"', "fig-ch8-weights",
         "The weights each output step gives to earlier tokens: RWKV with slow and fast decay, and "
         "softmax attention.",
         "Three lower-triangular heat maps of output step against source token: with slow decay "
         "the weights spread over the past, with fast decay they concentrate near the diagonal, "
         "and softmax attention spreads them with no order in time."),
        ("c025", '"generating token t"', "fig-ch8-cost",
         "Cost against sequence length: forward time (left) and peak memory (middle) of "
         "attention and RWKV, and the time to generate token t (right).",
         "Three log-log panels. Left: forward time against L, attention with the steepest slope. "
         "Middle: peak memory against L, attention growing fastest. Right: time per generated "
         "token against its position, rising for attention with a KV cache and flat for the "
         "RWKV step."),
        ("c033", 'title="per second"', "fig-ch8-training",
         "Validation loss of the small character models per training step (left) and per "
         "wall-clock second (right); the dotted line is the loss of a uniform guess.",
         "Two panels of validation loss in nats per character, against training step on the left "
         "and against seconds on the right, one line per model, with the loss of a uniform guess "
         "as a dotted line."),
    ],
    "09_ssd": [
        ("c020", "diagonal blocks by matmul", "fig-ch9-blocks",
         "The magnitude of the SSD matrix M for one head: lower-triangular, decaying away from the "
         "diagonal; the boxes are the diagonal blocks the chunked algorithm computes by matmul.",
         "Heat map of |M| over output time t and source time s, 48 by 48. Only the lower triangle "
         "is lit, brightest on the diagonal and fading below it; four square boxes mark the "
         "12-by-12 diagonal blocks."),
        ("c026", "milliseconds on this machine (log scale)", "fig-ch9-time-split",
         "Where the time of the chunked SSD goes on this machine, step by step, beside the "
         "quadratic form and the step-by-step recurrence.",
         "Horizontal bar chart on a log scale of milliseconds for the four chunked steps (diagonal "
         "blocks, chunk states, state passing, off-diagonal blocks), the quadratic form and the "
         "float64 loop; the diagonal blocks dominate the chunked steps and the quadratic form is "
         "slowest."),
        ("c036", "selective copying, equal state size", "fig-ch9-experiment",
         "Training loss on selective copying for Mamba and Mamba-2 with the same state size per "
         "layer; the legend gives each model's test accuracy.",
         "Line plot of the 10-step mean training loss against the training step for Mamba and "
         "Mamba-2, with a dotted line at the loss of guessing; both curves fall, Mamba's further."),
    ],
    "10_delta": [
        ("c025", "recall with overwrites, state 512 per layer", "fig-ch10-recall",
         "Associative recall with overwritten keys at equal state size: training accuracy of "
         "linear attention, Mamba, DeltaNet and Gated DeltaNet; the legend gives test accuracy.",
         "Line plot of the 20-step mean training accuracy against the training step for four "
         "models, with a dotted chance line. The delta-rule models climb towards 1; linear "
         "attention and Mamba stay low."),
    ],
}


def metadata(name, caption, alt):
    if caption is None:
        return {"image": {"alt": alt}}
    return {"figure": {"caption": caption, "name": name}, "image": {"alt": alt}}


def apply(check: bool = False) -> int:
    problems = 0
    for stem, figures in FIGURES.items():
        path = ROOT / "book" / f"{stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cells = {c.get("id"): c for c in nb.cells}
        changed = False
        for cell_id, snippet, name, caption, alt in figures:
            cell = cells.get(cell_id)
            if cell is None or cell.cell_type != "code" or snippet not in cell.source:
                print(f"{path.name}: cell {cell_id} no longer draws the figure {name} "
                      f"(snippet {snippet!r} not found): left alone", file=sys.stderr)
                problems += 1
                continue
            want = metadata(name, caption, alt)
            if cell.metadata.get("mystnb") != want:
                if check:
                    print(f"{path.name}: cell {cell_id} lacks the metadata of {name}", file=sys.stderr)
                    problems += 1
                else:
                    cell.metadata["mystnb"] = want
                    changed = True
        if changed:
            nbformat.write(nb, path)
            print(f"wrote {path.relative_to(ROOT)}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if anything is missing")
    args = ap.parse_args(argv)
    sys.exit(1 if apply(args.check) else 0)


if __name__ == "__main__":
    main()
