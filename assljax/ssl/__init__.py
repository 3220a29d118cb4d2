"""Semi-supervised training: FixMatch (+ DARP), MixMatch, Mean Teacher, supervised.

    from assljax import models, ssl
    model = models.build("wrn-28-2", num_classes=10, input_shape=(32, 32, 3), ...)
    data = ssl.make_data(x_pool, labels, labeled_mask)
    trainer = ssl.make_trainer(model, ssl.fixmatch(), batch_size=64, total_steps=2**20)
    state = trainer.init(key, data)
    state = trainer.train(state, data, num_steps, chunk_steps=1000, callback=...)
    ssl.evaluate(model, trainer.eval_variables(state), x_test, y_test)

Each algorithm is a pure loss on a batch (:mod:`assljax.ssl.algorithm`); the engine
(:mod:`assljax.ssl.train`) samples batches on device, runs jitted chunks of steps and
keeps the whole training state in one orbax-ready pytree. On-device augmentation lives
in :mod:`assljax.ssl.augment` (images) and :mod:`assljax.ssl.audio_augment` (waveforms,
then the log-mel transform).
"""

from assljax.ssl.algorithm import (
    Algorithm, Batch, LossContext, linear_rampup, no_augment, sigmoid_rampup)
from assljax.ssl.audio_augment import (
    audio_augmentations, audio_strong, audio_weak, augment_waveforms, log_mel_spectrogram)
from assljax.ssl.darp import (
    DarpState, darp_prescale, fixmatch_darp, refine_pseudo_labels)
from assljax.ssl.ema import ema_update, mean_teacher_decay
from assljax.ssl.fixmatch import fixmatch
from assljax.ssl.mean_teacher import mean_teacher
from assljax.ssl.mixmatch import mixmatch, mixup, sharpen
from assljax.ssl.optim import adam, fixmatch_schedule, kernel_mask, sgd
from assljax.ssl.supervised import supervised
from assljax.ssl.train import SSLData, Trainer, TrainState, evaluate, make_data, make_trainer

__all__ = [
    "Algorithm", "Batch", "DarpState", "LossContext", "SSLData", "TrainState", "Trainer",
    "adam", "audio_augmentations", "audio_strong", "audio_weak", "augment_waveforms",
    "darp_prescale", "ema_update", "evaluate", "fixmatch", "fixmatch_darp",
    "fixmatch_schedule", "kernel_mask", "linear_rampup", "log_mel_spectrogram", "make_data",
    "make_trainer", "mean_teacher", "mean_teacher_decay", "mixmatch", "mixup", "no_augment",
    "refine_pseudo_labels", "sgd", "sharpen", "sigmoid_rampup", "supervised",
]
