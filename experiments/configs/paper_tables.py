"""The papers' tables that the CRC, NPC, dynamicAL and Bilevel configs reproduce: one entry per config.

Not a config itself (no ``get_config``). This is the one place to check a config against
its paper: every entry holds the facts of one table (with page / section), what the
config must run to reproduce it, and what still differs and why.
``tests/experiments/test_paper_tables.py`` resolves every config (full scale, default
arguments and each documented argument value) and checks it against its entry.

An entry (``TABLES[config]``) has:

    paper, table      the paper (``PAPERS``) and its table, with page / section
    arguments         the documented values of each config argument (first = default);
                      ``data=`` (the CIFAR-10 source) is left out: it changes only the data
    dataset           tfds name
    model             registry name and options
    num_classes       C, when the dataset's name does not say it (an audio folder)
    initial           per_class, labels (= per_class * C + extra), sampling ("balanced" |
                      "iid"), trials (the median of K first-round models, NPC §5.1),
                      extra (optional: more initial labels drawn at random)
    query_size, mode  Q and ``al.mode``
    labels            the label count at every evaluated round, round 0 first (the
                      schedule: initial, then after each query)
    columns           the table's columns (label counts; a subset of ``labels``)
    recipe            the ``config.ssl`` values (algorithm, options, optimizer, lr, ...)
    strategies        run label -> registry ``name``, ``hparams``, and ``mode`` / ``kernel``
                      where they are set
    seeds             the seeds (their number is the paper's number of runs)
    expected          {run label: {label count: accuracy %}} as printed in the table
                      (dynamicAL: first and last rows only); NPC's captions give the
                      initial model's accuracy as ``initial_accuracy``
    sources           fact -> where in the paper (or the cited code) it is stated
    differs           what still differs from the paper, and why

``by_argument`` holds the parts of an entry that depend on an argument value
(``"q=100"``, ``"train=crc"``, ...); :func:`resolve` merges them into the entry for one
argument string. Paper files are in ``../shared/papers/`` (000 CRC, 001/002 NPC, 003
dynamicAL, 004 Bilevel). ``LOAD_ARGUMENTS`` holds what a config needs to load at all
(bilevel_speech_commands has no default data source).
"""

from __future__ import annotations

import copy
from typing import Any

PAPERS = {
    "CRC": "Kong et al., 'Better Optimization can Reduce Sample Complexity: Active "
           "Semi-Supervised Learning via Convergence Rate Control', ICLR 2021 submission "
           "(papers/000)",
    "NPC": "Kong et al., 'A Neural Pre-Conditioning Active Learning Algorithm to Reduce "
           "Label Complexity', NeurIPS 2022 (papers/001, 002)",
    "dynamicAL": "Wang et al., 'Deep Active Learning by Leveraging Training Dynamics', "
                 "NeurIPS 2022; ICLR 2022 submission text (papers/003)",
    "Bilevel": "Borsos, Tagliasacchi & Krause, 'Semi-supervised Batch Active Learning via "
               "Bilevel Optimization', ICASSP 2021 (papers/004)",
}

FIXMATCH_STEPS = 2 ** 20
CRC_EPOCH = 1024            # CRC App. A.1: 1,024 training iterations between validations


def fixmatch(*, weight_decay: float = 5e-4, darp: bool = False, flip: bool = True) -> dict:
  """FixMatch's reference recipe (DESIGN §5; the implementations CRC §4.1 cites)."""
  options = dict(threshold=0.95, lambda_u=1.0)
  if darp:
    options.update(warmup_steps=int(0.4 * FIXMATCH_STEPS), refine_every=10, num_iters=10,
                   target_distribution=None)
  return dict(algorithm="fixmatch_darp" if darp else "fixmatch", options=options,
              optimizer=None, lr=0.03, end_lr=None, weight_decay=weight_decay,
              batch_size=64, mu=7, total_steps=FIXMATCH_STEPS,
              steps_per_round=FIXMATCH_STEPS, ema_decay=0.999, reinit=True,
              augment=dict(flip=flip, pad=4, num_ops=2, cutout_fraction=0.5),
              early_stopping=None)


def crc_stopping(patience_epochs: int, max_epochs: int) -> dict:
  """``train=crc``: CRC §4.1's early stopping (5,000 validation images: a choice)."""
  return dict(steps_per_round=max_epochs * CRC_EPOCH,
              early_stopping=dict(eval_every=CRC_EPOCH, patience=patience_epochs * CRC_EPOCH,
                                  validation_size=5000))


def dynamical_recipe() -> dict:
  return dict(algorithm="supervised", options={}, optimizer="adam", lr=0.001, end_lr=None,
              weight_decay=0.0, batch_size=128, mu=None, total_steps=1000,
              steps_per_round=1000, ema_decay=0.0, reinit=False,
              augment=dict(flip=False, pad=0, num_ops=0, cutout_fraction=0.0),
              early_stopping=None)


def _schedule(initial: int, q: int, queries: int) -> tuple[int, ...]:
  return tuple(initial + k * q for k in range(queries + 1))


# ------------------------------------------------------------------------------- CRC

CRC_TRAIN_DIFFERS = {
    "train=reference": [
        "Training length: FixMatch's 2^20 steps every round, not CRC §4.1's early-stopped "
        "schedule (select it with train=crc)."],
    "train=crc": [
        "The validation split (5,000 images held out of the pool, Oliver et al.'s CIFAR-10 "
        "size) is a choice: CRC does not state its size.",
        "The cosine learning-rate schedule keeps FixMatch's 2^20-step length; CRC does not "
        "say whether it shortened it to the 350/600-epoch cap."],
}
CRC_COMMON_DIFFERS = [
    "App. A.1: CIFAR runs used ReLU; the library's WRN uses leaky ReLU 0.1 (it has no "
    "activation option).",
    "App. A.1: 'we ran several experiments and used the best models at query step 0'; the "
    "library's al.initial_trials keeps the median of K, and K is not stated, so each seed "
    "trains one first-round model.",
]
CRC_SOURCES = {
    "model": "§4.1 p. 7 (WRN-28-2 for SVHN/CIFAR-10); App. A.1 p. 12",
    "first query": "§4.1 p. 7 'randomly sampled a balanced number of images per class in "
                   "the first query iteration'; App. A.1",
    "G = Q/10": "§3.4 p. 6 'All experiments hereon use G = Q/10'",
    "CRC kernel": "Alg. 2 p. 6 'empirical NTK computed over final layers'; §3.3",
    "FixMatch": "§4.1 p. 7 and fn. 3-4 (kekmodel / LeeDoYup FixMatch-pytorch); App. A.1 "
                "'All other configurations were as set in the original implementations'",
    "retrain from scratch": "§3.3 p. 5 'our networks are retrained from scratch between "
                            "each query iteration'",
    "seeds": "§4.1 p. 7 'All experiments are repeated 3 times'",
    "train=crc": "§4.1 p. 7 '50/100/inf epochs or 350/600/512 epochs ... CIFAR10/100/SVHN'; "
                 "App. A.1 one epoch = 1,024 iterations",
}


def _crc_cifar10_q(q: int) -> dict:
  g = q // 10
  expected = {
      50: {"random": (69.81, 82.14, 82.41, 84.98, 84.92),
           "entropy": (72.43, 82.41, 83.38, 84.86, 86.42),
           "confidence": (52.54, 49.55, 50.67, 45.04, 53.44),
           "egl": (57.18, 56.67, 68.76, 74.47, 76.67),
           "crc": (78.41, 83.67, 85.67, 86.88, 87.01)},
      100: {"random": (85.04, 87.09, 87.57, 87.92, 87.37),
            "entropy": (85.51, 86.89, 86.87, 88.27, 88.44),
            "confidence": (77.05, 78.29, 73.68, 73.69, 75.98),
            "egl": (79.95, 80.41, 81.20, 82.62, 83.55),
            "crc": (83.38, 85.71, 88.08, 88.37, 89.35)}}[q]
  labels = _schedule(q, q, 5)
  return dict(
      table=f"Tab. 3 (p. 7), Q = {q} half",
      initial=dict(per_class=q // 10, labels=q, sampling="balanced", trials=1),
      query_size=q, labels=labels, columns=labels[1:],
      strategies={"random": dict(name="random"), "entropy": dict(name="entropy"),
                  "confidence": dict(name="confidence"),
                  "egl": dict(name="egl", hparams=dict(params="all", squared=True)),
                  "crc": dict(name="crc", hparams=dict(group_size=g))},
      expected={label: dict(zip(labels[1:], acc)) for label, acc in expected.items()})


TABLES: dict[str, dict[str, Any]] = {}

TABLES["crc_cifar10"] = dict(
    paper="CRC", table="Tab. 3 (p. 7)",
    arguments=dict(q=(50, 100), train=("reference", "crc")),
    dataset="cifar10", model=dict(name="wrn-28-2", options={}),
    mode="sequential", recipe=fixmatch(), seeds=(0, 1, 2),
    sources={**CRC_SOURCES,
             "Q, columns": "Tab. 3: Q in {50, 100}; 100-300 / 200-600 labels (five "
                           "queries after the random first one, which App. A.1 leaves "
                           "out of the tables)",
             "strategies": "Tab. 3 rows; §4.2 p. 7 (least confidence, entropy, EGL as "
                           "E_y ||grad_theta H(y, f(x))||^2 over all parameters)"},
    differs=list(CRC_COMMON_DIFFERS),
    by_argument={"q=50": _crc_cifar10_q(50), "q=100": _crc_cifar10_q(100),
                 "train=reference": dict(differs=CRC_TRAIN_DIFFERS["train=reference"]),
                 "train=crc": dict(recipe=crc_stopping(50, 350),
                                   differs=CRC_TRAIN_DIFFERS["train=crc"])})

TABLES["crc_cifar100"] = dict(
    paper="CRC", table="Tab. 4 (p. 8), CIFAR-100 half",
    arguments=dict(widen=(10, 8), train=("reference", "crc")),
    dataset="cifar100",
    initial=dict(per_class=2, labels=200, sampling="balanced", trials=1),
    query_size=50, mode="sequential", labels=(200, 250, 300, 350, 400),
    columns=(250, 300, 350, 400),
    recipe=fixmatch(weight_decay=1e-3),
    strategies={"random": dict(name="random"),
                "crc": dict(name="crc", hparams=dict(group_size=5))},
    seeds=(0, 1, 2),
    expected={"random": {250: 41.45, 300: 44.57, 350: 45.19, 400: 49.35},
              "crc": {250: 41.87, 300: 45.27, 350: 47.04, 400: 50.16}},
    sources={**CRC_SOURCES,
             "model": "§4.1 p. 7 says WRN-28-10 for CIFAR-100; App. A.1 p. 12 says WRN-28-8",
             "Q, G": "Tab. 4 caption Q = 50; §3.4 G = Q/10 = 5",
             "initial 200": "Tab. 4 columns 250-400 with Q = 50: 200 labels before the "
                            "first CRC query (2 per class)",
             "weight decay 1e-3": "FixMatch's CIFAR-100 setting (the cited "
                                  "LeeDoYup/FixMatch-pytorch; DESIGN §5)",
             "strategies": "Tab. 4 rows: Random, CRC"},
    differs=["Tab. 4's caption says 20 random images per class in the first query (2,000 "
             "labels), which contradicts its columns (250-400 labels with Q = 50); the "
             "config follows the columns: 2 per class."] + CRC_COMMON_DIFFERS,
    by_argument={
        "widen=10": dict(model=dict(name="wrn", options=dict(depth=28, widen_factor=10)),
                         differs=["WRN-28-10 follows §4.1; App. A.1 says WRN-28-8 "
                                  "(widen=8)."]),
        "widen=8": dict(model=dict(name="wrn", options=dict(depth=28, widen_factor=8)),
                        differs=["WRN-28-8 follows App. A.1; §4.1 says WRN-28-10 "
                                 "(widen=10)."]),
        "train=reference": dict(differs=CRC_TRAIN_DIFFERS["train=reference"]),
        "train=crc": dict(recipe=crc_stopping(100, 600),
                          differs=CRC_TRAIN_DIFFERS["train=crc"])})

TABLES["crc_svhn"] = dict(
    paper="CRC", table="Tab. 4 (p. 8), SVHN half",
    arguments=dict(train=("reference", "crc")),
    dataset="svhn_cropped", model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=12, labels=120, sampling="balanced", trials=1),
    query_size=20, mode="sequential", labels=(120, 140, 160, 180, 200, 220),
    columns=(140, 160, 180, 200, 220),
    recipe=dict(algorithm="mean_teacher",
                options=dict(consistency=8.0, rampup_steps=200_000, ema_during_rampup=0.95,
                             ema_after_rampup=0.95),
                optimizer="adam", lr=4e-4, end_lr=None, weight_decay=0.0, batch_size=50,
                mu=1, total_steps=500_000, steps_per_round=500_000, ema_decay=0.95,
                reinit=True, augment=dict(flip=False, pad=2, num_ops=0, cutout_fraction=0.0),
                early_stopping=None),
    strategies={"random": dict(name="random"),
                "crc": dict(name="crc", hparams=dict(group_size=2))},
    seeds=(0, 1, 2),
    expected={"random": {140: 56.03, 160: 66.48, 180: 73.46, 200: 89.20, 220: 91.01},
              "crc": {140: 55.01, 160: 64.02, 180: 85.14, 200: 89.89, 220: 91.44}},
    sources={**CRC_SOURCES,
             "model": "§4.1 p. 7 WRN-28-2; App. A.1 leaky ReLU 0.1 for Mean Teacher on SVHN",
             "initial 120, Q = 20, G = 2": "Tab. 4 caption (12 per class, Q = 20); §3.4",
             "Mean Teacher": "§4.1 fn. 5: perrying/realistic-ssl-evaluation-pytorch; "
                             "config.py (Adam lr 4e-4, consis_coef 8, ema_factor 0.95, "
                             "batch_size 100, iteration 500,000, warmup 200,000, "
                             "lr_decay_iter 400,000 x 0.2), train.py (50 labeled + 50 "
                             "unlabeled per batch, ramp exp(-5 (1 - t/warmup)^2)), "
                             "lib/algs/mean_teacher.py (EMA min(1 - 1/(t+1), 0.95)), "
                             "lib/transform.py (SVHN: no flip, 2-px reflect-pad crop, no "
                             "noise)",
             "strategies": "Tab. 4 rows: Random, CRC"},
    differs=["The implementation multiplies the lr by 0.2 at iteration 400,000; the "
             "library's Adam is constant or linearly decaying, so lr stays 4e-4.",
             "The implementation averages the consistency loss over the unlabeled half of "
             "each batch (masked, divided by the batch of 100); the library's Mean Teacher "
             "averages over every input, labeled ones included.",
             "The implementation reports the student at its best validation accuracy "
             "(every 25,000 iterations, 7,325 held-out images); the library evaluates the "
             "EMA teacher after the last step and keeps those images in the pool.",
             CRC_COMMON_DIFFERS[1]],
    by_argument={
        "train=reference": dict(differs=["Training length: the implementation's 500,000 "
                                         "iterations, not CRC §4.1's 512 epochs."]),
        "train=crc": dict(recipe=dict(total_steps=512 * CRC_EPOCH,
                                      steps_per_round=512 * CRC_EPOCH),
                          differs=["CRC §4.1 for SVHN: infinite patience, at most 512 "
                                   "epochs; where the implementation's lr decay falls in "
                                   "that schedule is not stated."])})

_TAB2 = {2: (84.72, 87.11, 87.83, 88.3, 89.44), 5: (82.55, 84.13, 87.24, 87.66, 88.63),
         10: (83.38, 85.71, 88.07, 88.36, 89.35), 100: (83.31, 86.49, 86.76, 88.49, 88.63)}
TABLES["crc_ablation_group"] = dict(
    paper="CRC", table="Tab. 2 (p. 6)",
    arguments=dict(train=("reference", "crc")),
    dataset="cifar10", model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=10, labels=100, sampling="balanced", trials=1),
    query_size=100, mode="sequential", labels=(100, 200, 300, 400, 500, 600),
    columns=(200, 300, 400, 500, 600),
    recipe=fixmatch(),
    strategies={f"crc_g{g}": dict(name="crc", hparams=dict(group_size=g)) for g in _TAB2},
    seeds=(0, 1, 2),
    expected={f"crc_g{g}": dict(zip((200, 300, 400, 500, 600), acc))
              for g, acc in _TAB2.items()},
    sources={**CRC_SOURCES,
             "Q = 100, G in {2, 5, 10, 100}, 3 realizations": "§3.4 p. 6; Tab. 2 caption "
                                                              "('random sampling for the "
                                                              "first query')",
             "same setup as Tab. 3": "Tab. 2's G = 10 row = Tab. 3's CRC row at Q = 100"},
    differs=list(CRC_COMMON_DIFFERS),
    by_argument={"train=reference": dict(differs=CRC_TRAIN_DIFFERS["train=reference"]),
                 "train=crc": dict(recipe=crc_stopping(50, 350),
                                   differs=CRC_TRAIN_DIFFERS["train=crc"])})

_LAYERS = {"crc_last_layer": dict(name="crc", kernel="last_layer", hparams=dict(group_size=5)),
           "crc_all_layers": dict(name="crc", kernel="all_layers", hparams=dict(group_size=5))}
TABLES["crc_ablation_layers"] = dict(
    paper="CRC", table="Tab. 1 (p. 5)",
    arguments=dict(first=("random", "untrained"), train=("reference", "crc")),
    dataset="cifar10", model=dict(name="wrn-28-2", options={}),
    query_size=50, recipe=fixmatch(), strategies=_LAYERS, seeds=(0, 1, 2),
    sources={**CRC_SOURCES,
             "G = 5, Q = 50, last vs all layers": "Tab. 1 caption; §3.3 p. 5",
             "randomly initialized model": "Tab. 1 left half; App. A.1 'the first query "
                                           "step is performed using a randomly initialized "
                                           "model ..., then performing SSL with another "
                                           "instance of random initialization'",
             "same setup as Tab. 3": "Tab. 1's 'Random sampling / Last' row = Tab. 3's CRC "
                                     "row at Q = 50, 100-200 labels"},
    differs=list(CRC_COMMON_DIFFERS),
    by_argument={
        "first=random": dict(
            table="Tab. 1 (p. 5), 'Random sampling' half",
            initial=dict(per_class=5, labels=50, sampling="balanced", trials=1),
            mode="sequential", labels=(50, 100, 150, 200), columns=(100, 150, 200),
            expected={"crc_last_layer": {100: 78.41, 150: 83.67, 200: 85.67},
                      "crc_all_layers": {100: 71.26, 150: 78.13, 200: 79.10}}),
        "first=untrained": dict(
            table="Tab. 1 (p. 5), 'Randomly initialized model' half",
            initial=dict(per_class=0, labels=0, sampling="balanced", trials=1),
            mode="random_init_first", labels=(0, 50, 100, 150), columns=(50, 100, 150),
            expected={"crc_last_layer": {50: 53.12, 100: 67.14, 150: 71.98},
                      "crc_all_layers": {50: 50.47, 100: 68.25, 150: 74.03}},
            differs=["Tab. 1 ran 'All' once in this half ('one trial for All'); here every "
                     "row has 3 seeds.",
                     "Round 0 reports the untrained network at 0 labels (the table starts "
                     "at 50)."]),
        "train=reference": dict(differs=CRC_TRAIN_DIFFERS["train=reference"]),
        "train=crc": dict(recipe=crc_stopping(50, 350), differs=CRC_TRAIN_DIFFERS["train=crc"])})

# ------------------------------------------------------------------------------- NPC

NPC_DIFFERS = [
    "§5.1 'adopt[s] all SSL-related configurations from (Oliver et al., 2018)' without "
    "listing them; FixMatch's own reference settings (DESIGN §5) are used.",
    "DARP's schedule is not in the paper: refinement every 10 steps after a 40 % warm-up, "
    "10 solver iterations (DARP's code warms up for 200 of 500 epochs).",
]
NPC_SOURCES = {
    "model": "§5.1 'WRN-28-2 architecture ... for all experiments'",
    "Q0 = 1 per class, balanced": "§2.1 ('a small set of labels |Y_L^0| = Q0 with balanced "
                                  "classes'); §5.1 'randomly sampled 1 image per class'",
    "median of 5 trials": "§5.1 'used the model that attained median performance across 5 "
                          "trials'",
    "FixMatch + DARP, uniform target": "§2.1, §2.2.2, §5.1",
    "retrain from scratch": "§5.1 'we train classifiers from scratch after each "
                            "acquisition step'",
    "seeds": "§5.1 'All performances are averaged over 3 trials'",
    "strategies": "§5.2: passive, margin, ALBL over least confidence and Coreset "
                  "(two-armed), BADGE",
    "NPC": "§3.3-3.4: last-layer gradients, class blocks replaced by their trace, "
           "m = O(N_U) random candidate batches, lambda_min",
}
_NPC_BASELINES = {"passive": dict(name="random"), "margin": dict(name="margin"),
                  "albl": dict(name="albl", hparams=dict(experts=("confidence", "coreset"))),
                  "badge": dict(name="badge")}

TABLES["npc_cifar10"] = dict(
    paper="NPC", table="Tab. 1",
    arguments={},
    dataset="cifar10", model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=1, labels=10, sampling="balanced", trials=5),
    query_size=20, mode="sequential", labels=(10, 30, 50, 70), columns=(30, 50, 70),
    recipe=fixmatch(darp=True),
    strategies={**_NPC_BASELINES, "npc": dict(name="npc")},
    seeds=(0, 1, 2),
    expected={"passive": {30: 78.08, 50: 91.82, 70: 91.00},
              "margin": {30: 87.36, 50: 90.85, 70: 90.85},
              "albl": {30: 80.61, 50: 89.62, 70: 94.45},
              "badge": {30: 80.60, 50: 86.43, 70: 80.32},
              "npc": {30: 85.09, 50: 94.63, 70: 94.85}},
    initial_accuracy=57.64,
    sources={**NPC_SOURCES, "Q0 = 10, Q = 20, columns": "Tab. 1 caption and columns; §5.1"},
    differs=list(NPC_DIFFERS))

TABLES["npc_cifar100"] = dict(
    paper="NPC", table="Tab. 2",
    arguments={},
    dataset="cifar100", model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=1, labels=100, sampling="balanced", trials=5),
    query_size=200, mode="sequential", labels=(100, 300, 500, 700, 900),
    columns=(300, 500, 700, 900),
    recipe=fixmatch(darp=True, weight_decay=1e-3),
    strategies={**_NPC_BASELINES, "npc": dict(name="npc"),
                "npc_positive_only": dict(name="npc", hparams=dict(positive_only=True))},
    seeds=(0, 1, 2),
    expected={"passive": {300: 37.98, 500: 47.11, 700: 52.69, 900: 57.97},
              "margin": {300: 37.41, 500: 48.21, 700: 52.53, 900: 57.03},
              "albl": {300: 39.05, 500: 49.88, 700: 54.23, 900: 56.65},
              "badge": {300: 24.55, 500: 25.21, 700: 28.03, 900: 29.81},
              "npc": {300: 40.92, 500: 48.16, 700: 55.76, 900: 58.58}},
    initial_accuracy=21.29,
    sources={**NPC_SOURCES, "Q0 = 100, Q = 200, columns": "Tab. 2 caption and columns; §5.1"},
    differs=["npc_positive_only is an EXTRA row, not in the paper: the traced last-layer "
             "NTK of WRN-28-2 has rank <= 129, below labeled + candidates (300 at the first "
             "query), so the plain lambda_min of every candidate is 0 and plain NPC (the "
             "'npc' row, as the paper scores) returns a uniformly random batch.",
             "Weight decay 1e-3 is FixMatch's CIFAR-100 value; the paper states none."]
    + NPC_DIFFERS)

TABLES["npc_shots"] = dict(
    paper="NPC", table="Tab. 3 (§5.4)",
    arguments=dict(q=(30, 50)),
    dataset="cifar10", model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=1, labels=10, sampling="balanced", trials=5),
    mode="single_shot", recipe=fixmatch(darp=True),
    strategies={f"{name}_{mode}": dict(name=name, mode=mode)
                for name in ("npc", "badge") for mode in ("zero_shot", "single_shot")},
    seeds=(0, 1, 2),
    sources={**NPC_SOURCES,
             "zero / single shot": "§5.4: 'a single query given a model trained on very few "
                                   "labels (N_L = 10) and a randomly initialized (N_L = 0) "
                                   "model'; Tab. 3 caption",
             "Q in {30, 50}, columns 40 / 60": "Tab. 3",
             "strategies": "Tab. 3 rows: BADGE, NPC"},
    differs=["al.initial_trials = 5 applies to the first round that trains: for single-shot "
             "the 10-label model (as §5.1), for zero-shot the model trained after the query, "
             "whose accuracy is the reported one (a median of 5 trainings, where the paper "
             "presumably trained once)."] + NPC_DIFFERS,
    by_argument={
        "q=30": dict(query_size=30, labels=(10, 40), columns=(40,),
                     expected={"badge_zero_shot": {40: 92.13}, "npc_zero_shot": {40: 93.14},
                               "badge_single_shot": {40: 86.70},
                               "npc_single_shot": {40: 92.26}}),
        "q=50": dict(query_size=50, labels=(10, 60), columns=(60,),
                     expected={"badge_zero_shot": {60: 94.42}, "npc_zero_shot": {60: 93.16},
                               "badge_single_shot": {60: 70.28},
                               "npc_single_shot": {60: 93.76}})})

# ------------------------------------------------------------------------- dynamicAL

DYNAMICAL_DIFFERS = [
    "The paper names no optimizer, batch size or augmentation (App. C.1 gives only the "
    "constant lr 0.001); Adam without weight decay, batch 128 and no augmentation follow the "
    "official dynamicAL code. The optimizer state restarts every round; the weights continue.",
    "'Train ... until convergence' (Alg. 1) is a fixed 1,000 steps per round.",
    "The raw weights are evaluated (EMA decay 0).",
]
DYNAMICAL_SOURCES = {
    "initial M = 500, i.i.d.": "§2.2 'M points are i.i.d. sampled from p(x, y) as the "
                               "(initial) labeled set'; §5.1 'initial set size M = 500'",
    "no re-initialization": "§5.1 'after each query, no re-initialization is used'; Alg. 1",
    "constant lr 0.001": "App. C.1 'We keep a constant learning rate of 0.001'",
    "5 runs": "§5.1 'report the mean value of 5 runs'; §8",
    "strategies": "§5.1 and App. E.1: Random, Coreset, Conf, Marg, Entropy, ALBL "
                  "('combines Coreset and Conf'), BADGE",
    "dynamicAL": "§3.2, Alg. 1: pseudo-labels, top-b by the change of training dynamics",
}
_DYNAMICAL_STRATEGIES = {
    "random": dict(name="random"), "coreset": dict(name="coreset"),
    "confidence": dict(name="confidence"), "margin": dict(name="margin"),
    "entropy": dict(name="entropy"),
    "albl": dict(name="albl", hparams=dict(experts=("confidence", "coreset"))),
    "badge": dict(name="badge"), "dynamicAL": dict(name="dynamicAL")}
_DYN_LABELS = ("random", "margin", "entropy", "coreset", "confidence", "albl", "badge",
               "dynamicAL")   # the tables' column order


def _dyn_expected(first: tuple, last: tuple, initial: int, final: int) -> dict:
  return {label: {initial: a, final: z} for label, a, z in zip(_DYN_LABELS, first, last)}


TABLES["dynamical_cifar10"] = dict(
    paper="dynamicAL", table="App. E.3 Tab. 2 / Tab. 3 (Fig. 3)",
    arguments=dict(b=(250, 500)),
    dataset="cifar10", model=dict(name="tutorial_cnn", options={}),
    initial=dict(per_class=50, labels=500, sampling="iid", trials=1),
    mode="sequential", recipe=dynamical_recipe(), strategies=_DYNAMICAL_STRATEGIES,
    seeds=(0, 1, 2, 3, 4),
    sources={**DYNAMICAL_SOURCES,
             "model": "App. C.1 'the same architecture used in Pytorch CIFAR10 Image "
                      "Classification Tutorial'",
             "b, 9 queries": "Tab. 2 (b = 250) and Tab. 3 (b = 500): rows 0-9"},
    differs=list(DYNAMICAL_DIFFERS),
    by_argument={
        "b=250": dict(
            table="App. E.3 Tab. 2 (b = 250)", query_size=250,
            labels=_schedule(500, 250, 9), columns=_schedule(500, 250, 9),
            expected=_dyn_expected(
                (32.32, 32.48, 32.32, 32.41, 32.27, 32.50, 32.66, 32.57),
                (37.85, 38.75, 38.29, 37.25, 38.91, 37.57, 38.78, 38.91), 500, 2750)),
        "b=500": dict(
            table="App. E.3 Tab. 3 (b = 500; Fig. 3 left)", query_size=500,
            labels=_schedule(500, 500, 9), columns=_schedule(500, 500, 9),
            expected=_dyn_expected(
                (32.26, 32.31, 32.29, 32.54, 32.32, 32.41, 32.49, 32.37),
                (40.17, 41.64, 40.71, 39.43, 41.55, 39.95, 41.41, 41.78), 500, 5000))})

TABLES["dynamical_svhn"] = dict(
    paper="dynamicAL", table="App. E.3 Tab. 6 / Tab. 7 (Fig. 3)",
    arguments=dict(b=(500, 1000)),
    dataset="svhn_cropped", model=dict(name="vgg11_torchvision", options={}),
    initial=dict(per_class=50, labels=500, sampling="iid", trials=1),
    mode="sequential", recipe=dynamical_recipe(), strategies=_DYNAMICAL_STRATEGIES,
    seeds=(0, 1, 2, 3, 4),
    sources={**DYNAMICAL_SOURCES,
             "model": "App. C.1 'the Pytorch Offical implementation of VGG-11' "
                      "(torchvision vgg11)",
             "b, 9 queries": "Tab. 6 (b = 500) and Tab. 7 (b = 1000): rows 0-9"},
    differs=["torchvision's two Dropout(0.5) layers are left out (the library's model edge "
             "has no dropout).",
             "The pool is SVHN's train split without 'extra' (the paper does not say)."]
    + DYNAMICAL_DIFFERS,
    by_argument={
        "b=500": dict(
            table="App. E.3 Tab. 6 (b = 500; Fig. 3 middle)", query_size=500,
            labels=_schedule(500, 500, 9), columns=_schedule(500, 500, 9),
            expected=_dyn_expected(
                (25.94, 26.15, 26.41, 25.83, 26.52, 25.31, 26.38, 26.30),
                (84.42, 88.23, 87.11, 86.18, 87.87, 87.89, 87.29, 88.52), 500, 5000)),
        "b=1000": dict(
            table="App. E.3 Tab. 7 (b = 1000)", query_size=1000,
            labels=_schedule(500, 1000, 9), columns=_schedule(500, 1000, 9),
            expected=_dyn_expected(
                (25.90, 26.20, 26.85, 26.18, 27.21, 26.60, 26.88, 26.43),
                (88.28, 91.59, 91.25, 90.64, 91.66, 91.41, 91.76, 91.67), 500, 9500))})

_ROUNDS = {100: (10, 36.84), 250: (4, 36.72), 500: (2, 36.71), 1000: (1, 36.67)}
TABLES["dynamical_rounds"] = dict(
    paper="dynamicAL", table="Tab. 1 (§5.2), CIFAR10 + CNN column",
    arguments=dict(b=(100, 250, 500, 1000)),
    dataset="cifar10", model=dict(name="tutorial_cnn", options={}),
    initial=dict(per_class=50, labels=500, sampling="iid", trials=1),
    mode="sequential", recipe=dynamical_recipe(),
    strategies={"dynamicAL": dict(name="dynamicAL")}, seeds=(0, 1, 2, 3, 4),
    columns=(1500,),
    sources={**DYNAMICAL_SOURCES,
             "B = 1000, (R, b)": "Tab. 1: (10, 100), (4, 250), (2, 500), (1, 1000); §2.2 "
                                 "B = b x R; §5.2 'total budge size B = 1000'",
             "model": "App. C.1 (the PyTorch tutorial CNN)",
             "strategies": "Tab. 1 reports dynamicAL only"},
    differs=list(DYNAMICAL_DIFFERS),
    by_argument={f"b={b}": dict(table=f"Tab. 1 (§5.2), CIFAR10 + CNN, R = {r}, b = {b}",
                                query_size=b, labels=_schedule(500, b, r),
                                expected={"dynamicAL": {1500: acc}})
                 for b, (r, acc) in _ROUNDS.items()})


# ---------------------------------------------------------------------------- Bilevel


def mixmatch_bilevel() -> dict:
  """§3: MixMatch with λ_u = 10 and K = 2, 10^5 Adam iterations (1e-3 -> 1e-5), batch 64."""
  return dict(algorithm="mixmatch",
              options=dict(num_views=2, temperature=0.5, alpha=0.75, lambda_u=10.0,
                           rampup_steps=16384),
              optimizer="adam", lr=1e-3, end_lr=1e-5, weight_decay=None, batch_size=64,
              mu=1, total_steps=10 ** 5, steps_per_round=10 ** 5, ema_decay=0.999,
              reinit=True,
              augment=dict(flip=False, pad=2, num_ops=2, cutout_fraction=0.5, audio=True),
              early_stopping=None)


_AUGMENTED = dict(augment_flip=False, augment_pad=2)


def _bilevel_strategies(outer_size: int | None) -> dict:
  return {
      "uniform": dict(name="random"),
      "max_entropy": dict(name="entropy", hparams=dict(augmentations=2, **_AUGMENTED)),
      "k_center": dict(name="coreset"),
      "consistency": dict(name="consistency", hparams=dict(augmentations=5, **_AUGMENTED)),
      "bilevel": dict(name="bilevel", hparams=dict(
          landmarks=2000, augmentations=8, inner_solver="adam", inner_steps=1000,
          inner_batch_size=64, inner_lr=1e-3, reg=1e-4, fresh_augmentations=True,
          cg_steps=30, random_fraction=0.1, outer_size=outer_size, **_AUGMENTED))}


BILEVEL_SOURCES = {
    "spectrograms": "§3: pad to 1 s, 16 kHz, mel spectrogram window 2048, hop 512, 32 bins",
    "augmentations": "§3: amplitude, speed x U[0.8, 1.2], shift U[-250, 250] ms, "
                     "background noise SNR U[0, 40] dB, each with probability 0.5",
    "MixMatch": "§3: two augmentations for label guessing, cost trade-off 10, other "
                "hyperparameters as MixMatch [4], 10^5 iterations, Adam, batch 64, lr "
                "linearly 1e-3 -> 1e-5; Wide ResNet-28 without dropout",
    "baselines": "§3: max-entropy averaged over 2 augmentations, consistency [6] with 5 "
                 "augmentations, k-center [22] on last-layer embeddings",
    "bilevel": "§3: NTK of the WRN-28 (infinite width, no BN, no pooling), m = 2000 "
               "Nyström features, 90 % by Alg. 1 and 10 % uniformly at random",
    "inner solver": "§2 / reference code: Adam, 10^3 steps, batch 64, λ = 1e-4, fresh "
                    "augmentations; 30 CG steps",
    "schedule": "§3: retrained from scratch every round, b = 10, start / end 10/60 (Free "
                "Spoken Digit) and 50/200 (Speech Commands), every class in the initial pool",
    "seeds": "Fig. 3: average over 6 random seeds",
}
BILEVEL_DIFFERS = [
    "The strategies see spectrograms: the augmented views of max-entropy, consistency and "
    "bilevel's inner problem shift the spectrogram by up to 2 pixels instead of "
    "augmenting the waveform.",
    "Tab. 1's consistency result comes from starting it after 150 random labels (§3); "
    "this config runs it from the first query like the other strategies.",
    "The WRN-28 width and MixMatch's ramp-up length are MixMatch's CIFAR defaults "
    "(WRN-28-2, 16,384 steps): the paper does not state them.",
]

TABLES["bilevel_speech_commands"] = dict(
    paper="Bilevel", table="Tab. 1 (Speech Commands column; Fig. 3b)",
    arguments={}, dataset="audiofolder", num_classes=35,
    model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=1, extra=15, labels=50, sampling="balanced", trials=1),
    query_size=10, mode="sequential", labels=_schedule(50, 10, 15), columns=(200,),
    recipe=mixmatch_bilevel(), strategies=_bilevel_strategies(30_000),
    seeds=(0, 1, 2, 3, 4, 5),
    expected={"uniform": {200: 88.13}, "max_entropy": {200: 78.52},
              "k_center": {200: 81.45}, "consistency": {200: 82.06},
              "bilevel": {200: 90.58}},
    sources={**BILEVEL_SOURCES,
             "data": "§3: Speech Commands V2, ~85,000 utterances, 35 classes",
             "outer_size": "reference code (nystrom_example): 30,000 validation samples"},
    differs=BILEVEL_DIFFERS + [
        "data=tfds reads tfds speech_commands, which has 12 classes (ten words, silence, "
        "unknown), not the paper's 35: another task (then 12 + 38 initial labels)."])

TABLES["bilevel_spoken_digit"] = dict(
    paper="Bilevel", table="Tab. 1 (Free Spoken Digit column; Fig. 3a)",
    arguments={}, dataset="spoken_digit",
    model=dict(name="wrn-28-2", options={}),
    initial=dict(per_class=1, extra=0, labels=10, sampling="balanced", trials=1),
    query_size=10, mode="sequential", labels=_schedule(10, 10, 5), columns=(60,),
    recipe=mixmatch_bilevel(), strategies=_bilevel_strategies(None),
    seeds=(0, 1, 2, 3, 4, 5),
    expected={"uniform": {60: 91.33}, "max_entropy": {60: 87.56}, "k_center": {60: 92.67},
              "consistency": {60: 96.61}, "bilevel": {60: 98.89}},
    sources={**BILEVEL_SOURCES,
             "data": "§3: Free Spoken Digit Dataset, 2,700 utterances, 10 classes"},
    differs=BILEVEL_DIFFERS + [
        "The paper mixes in Speech Commands' background noise; FSDD has none, so that "
        "augmentation is skipped (with a warning) unless the folder has one.",
        "FSDD now has 3,000 recordings (2,700 pool, 300 test); the paper had 2,700."])

# What a config needs to load at all (no default data source).
LOAD_ARGUMENTS = {"bilevel_speech_commands": "data=/data/speech_commands_v2"}


# ------------------------------------------------------------------------- resolution


def argument_strings(name: str) -> list[str]:
  """Every documented argument combination of config ``name``, as config arguments
  (``""`` for the defaults): the product of the values in ``TABLES[name]["arguments"]``."""
  import itertools
  arguments = TABLES[name]["arguments"]
  keys = sorted(arguments)
  return [",".join(f"{k}={v}" for k, v in zip(keys, values))
          for values in itertools.product(*(arguments[k] for k in keys))]


def resolve(name: str, arg: str | None = None) -> dict:
  """The table entry of config ``name`` for the config argument ``arg`` (e.g.
  ``"q=100,train=crc"``; missing keys take their first documented value; ``data=`` and
  ``runlocal`` are ignored). ``differs`` lists the entry's items, then each argument's."""
  table = TABLES[name]
  values = {key: options[0] for key, options in table["arguments"].items()}
  for item in filter(None, (s.strip() for s in (arg or "").split(","))):
    key, _, text = item.partition("=")
    if key in ("data", "runlocal"):
      continue
    if key not in values:
      raise ValueError(f"{name} has no documented argument {key!r}")
    values[key] = type(table["arguments"][key][0])(text)
  entry = {k: copy.deepcopy(v) for k, v in table.items() if k != "by_argument"}
  entry["differs"] = list(entry.get("differs", []))
  for key in sorted(values):
    part = table.get("by_argument", {}).get(f"{key}={values[key]}")
    if part is None:
      continue
    for field, value in copy.deepcopy(part).items():
      if field == "differs":
        entry["differs"] += value
      elif field == "recipe":
        entry["recipe"] = {**entry["recipe"], **value}
      else:
        entry[field] = value
  entry["arguments"] = values
  return entry
