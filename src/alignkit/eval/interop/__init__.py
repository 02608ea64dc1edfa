"""Interop with other evaluation harnesses: lm-evaluation-harness and inspect_ai.

alignkit's ``results.json`` already has lm-eval's shape (``eval/results.py``), so lm-eval's tooling reads
it. This package goes the other way: it runs those harnesses' tasks on an alignkit model
(``alignkit eval run lm-eval:TASK`` / ``inspect:TASK``, see ``external.py``). Their packages are optional
extras (``pip install 'alignkit[lm-eval]'``, ``'alignkit[inspect]'``), imported only by
``lm_harness.py`` and ``inspect_provider.py``, which nothing imports until such a task is run.
"""
