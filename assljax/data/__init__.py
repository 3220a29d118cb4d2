"""Datasets and the labeled pool.

    ds = assljax.data.load("digits", seed=0)          # the embedded default (8×8 digits)
    ds = assljax.data.load("cifar10", data_dir=DIR)   # tensorflow-datasets, prepared offline
    ds = assljax.data.load("imagefolder", root=DIR)   # DIR/<split>/<class>/*.{png,jpg}
    ds = assljax.data.load("audiofolder", root=DIR)   # DIR/<split>/<class>/*.wav
    ds.train.x, ds.train.y, ds.train.ids              # (n, H, W, C) float32 in [0, 1], (n,), (n,)

    pool = initial_pool(ds.train.y, per_class=1, key=0, num_classes=ds.num_classes)
    plan = validate_query_plan(len(ds.train.y), ds.num_classes, 1, 10, 60)
    pool = add_labels(pool, indices, labels, num_classes=ds.num_classes)

Heavy libraries (tensorflow, tensorflow-datasets, scikit-learn, scipy, Pillow) are
imported only inside the loaders that need them.
"""

from __future__ import annotations

from assljax.data.audio import (DB_RANGE, log_mel_spectrogram, mel_weight_matrix, read_wav,
                                to_one_second)
from assljax.data.dataset import (Dataset, Split, available, channel_statistics, from_arrays,
                                  load, stratified_indices)
from assljax.data.folder import read_images
from assljax.data.pool import (Pool, QueryPlan, add_labels, class_histogram, empty_pool,
                               initial_pool, validate_query_plan)

__all__ = [
    "DB_RANGE", "Dataset", "Pool", "QueryPlan", "Split", "add_labels", "available",
    "channel_statistics", "class_histogram", "empty_pool", "from_arrays", "initial_pool",
    "load", "log_mel_spectrogram", "mel_weight_matrix", "read_images", "read_wav",
    "stratified_indices", "to_one_second", "validate_query_plan",
]
