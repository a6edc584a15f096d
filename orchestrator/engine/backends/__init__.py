"""Each searcher library's view of a search space, one module per library, side by side.

``hyperopt`` and ``optuna`` each hold the one dispatch over parameter kinds their library needs
(how a kind is drawn and how its draw is stored) and go through the space model's
library-neutral walk for the rest (``SearchSpace.active`` to encode a configuration,
``SearchSpace.build`` to decode one). Nothing outside these modules sees a library's encoding:
the searchers, the runner and the benchmarks pass values. Importing this package is light; each
module imports its library.
"""
