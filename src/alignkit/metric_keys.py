"""The names of what training loops log, one vocabulary for every trainer, its plots and the reports.

A key is ``<family>/<name>``; the family says what it is about:

=================  ===========================================================================================
``policy/*``       the trained policy: ``loss``, ``kl`` (to the reference, per response token), ``entropy``,
                   ``approx_kl`` and ``clipfrac`` (the update's ratio), ``grad_norm``, ``ptx_loss``, and its
                   samples' ``response_length`` (tokens) and ``finished_rate`` (ended their turn)
``value/*``        the reward critic (PPO): ``loss``, ``clipfrac``, ``explained_variance``, ``mean``, ``grad_norm``
``cost_value/*``   the cost critic (Safe RLHF): ``loss``, ``clipfrac``, ``explained_variance``, ``grad_norm``
``reward/*``       the reward scorer's view of the samples: ``score``, ``shaped`` (with the KL penalty),
                   ``group_std`` and ``zero_std_groups`` (group estimators)
``cost/*``         the cost scorer's: ``score``, ``shaped``
``lagrange/*``     Safe RLHF's multiplier: ``lambda``, ``episode_cost`` (the windowed mean it moves on)
``monitor/*``      a watched, never optimised scorer: ``score``
``eval/*``         held-out results: the scorers' means, ``response_length``; offline ``loss`` and metrics
``timing/*``       seconds per step spent in each phase (``alignkit.train.timing``)
=================  ===========================================================================================

Offline loops log ``loss``, ``lr``, ``grad_norm``, ``epoch`` and their loss's own metrics: ``rewards/*``
and ``logps/*`` for the DPO family and the reward model, ``cost/*`` (``accuracy``, ``sign_accuracy``, ...)
for the cost model, whose run has no online ``cost/*`` keys to clash with.
"""

from __future__ import annotations

ONLINE_PLOT_GROUPS: dict[str, list[str]] = {
    "reward": ["reward/score", "eval/reward"],
    "cost": ["cost/score", "eval/cost", "lagrange/episode_cost", "monitor/score", "eval/monitor"],
    "lambda": ["lagrange/lambda"],
    "kl": ["policy/kl", "policy/approx_kl"],
    "entropy": ["policy/entropy"],
    "losses": ["policy/loss", "value/loss", "cost_value/loss", "policy/ptx_loss"],
    "critic": ["value/explained_variance", "cost_value/explained_variance"],
    "groups": ["reward/group_std", "reward/zero_std_groups"],
    "response_length": ["policy/response_length", "eval/response_length"],
    "timing": ["timing/rollout", "timing/scoring", "timing/reference", "timing/old_logps", "timing/update"],
}
"""One PNG per group for every online trainer (a group a run does not log is left out)."""

OFFLINE_PLOT_GROUPS: dict[str, list[str]] = {
    "loss": ["loss", "eval/loss"],
    "lr": ["lr"],
    "grad_norm": ["grad_norm"],
    "timing": ["timing/data", "timing/forward_backward", "timing/optimizer"],
}
"""The groups every offline trainer plots; each adds its loss's own."""
