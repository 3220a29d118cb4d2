"""Acquisition strategies behind one registry and one signature (DESIGN §3)."""

from assljax.acquisition.base import (Context, Strategy, StatelessStrategy, available,
                                      check_finite, get, register, top_k_unlabeled)

__all__ = ["Context", "Strategy", "StatelessStrategy", "available", "check_finite", "get",
           "register", "top_k_unlabeled"]
