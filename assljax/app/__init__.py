"""The application layer: the only code that reads experiment configs (``ConfigDict``).

    cli          the ``assljax`` command line (run, cells, query, label, report)
    configs      loading ``FILE.py[:ARG]`` config files and typed ``--config.KEY=VALUE``
    defaults     every field ``assljax run`` reads, with its default (``base_config``)
    common       helpers the experiment configs share (``from assljax.app import common``)
    experiment   planning: a config -> dataset, model, trainer and one run plan per
                 (strategy, seed), then :func:`assljax.loop.round.run_loop` with explicit
                 arguments; results, labeling round trips
    sweep        the (strategy, seed) cells of a config, for one process per cell

Everything below this package (kernels, acquisition, ssl, data, models, loop, report)
takes explicit arguments and never sees a config.
"""
