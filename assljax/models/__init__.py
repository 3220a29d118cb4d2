"""Model families behind one pure-function edge (see :mod:`assljax.models.core`)."""

from assljax.models import cnn as _cnn  # noqa: F401  (registers "cnn")
from assljax.models import mlp as _mlp  # noqa: F401  (registers "mlp")
from assljax.models import resnet as _resnet  # noqa: F401  (registers "resnet18")
from assljax.models import vgg as _vgg  # noqa: F401  (registers "vgg11")
from assljax.models import wide_resnet as _wide_resnet  # noqa: F401  (registers "wrn*")
from assljax.models.core import Model, Variables, available, build, count_params, register

__all__ = ["Model", "Variables", "available", "build", "count_params", "register"]
