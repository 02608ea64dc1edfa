"""The harness the benchmark scripts share: measuring, both trainers' sides of a run, the run schedule and
the reports. Not a test helper and not part of alignkit: the scripts import it as ``_common`` (they run as
``python benchmarks/<name>.py``, which puts this folder first on ``sys.path``).

- ``measure``: memory meter, ``metered`` (wall time + memory of a block), per-step clocks;
- ``alignkit_side``: model sizes, the toy SFT policy, shared config sections, one timed ``train(config)``;
- ``trl_side``: TRL's keywords, model and optimizer, the loss recorder, token-split checks;
- ``online``: the rollout comparisons' recorder, phase timers and summaries;
- ``pairs``: the preference comparisons' workload (pairs in step order, their token counts);
- ``runs``: alternating timed runs, summaries over steps 2..N, medians;
- ``report``: host line, tables, target lines, the JSON header, profiles;
- ``cli``: the shared command-line options.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from .alignkit_side import (  # noqa: E402
    MODEL_SIZES,
    REPO,
    alignkit_common_sections,
    alignkit_trainer_section,
    fp32_model_section,
    online_trainer_section,
    parameter_count,
    policy_description,
    quiet_run_section,
    run_alignkit_timed,
    sized_model,
    step_batches,
    train_sft_policy,
)
from .cli import (  # noqa: E402
    add_adam_arguments,
    add_common_arguments,
    add_model_size_argument,
    add_policy_arguments,
    add_prompt_arguments,
    add_rollout_arguments,
    add_trl_optim_argument,
    benchmark_parser,
    check_rollout_divides,
    parse_checked,
    quiet_libraries,
    start_run,
)
from .measure import (  # noqa: E402
    MemoryMeter,
    alignkit_step_log,
    cpu_clock_at_metrics_log,
    memory_description,
    memory_key_and_label,
    metered,
    step_clock_callback,
)
from .online import (  # noqa: E402
    describe_rollout_run,
    patched,
    rollout_recorder,
    run_rollout_timed,
    summarise_rollout_run,
    timed,
)
from .pairs import PairWorkload, build_pair_workload, read_pairs  # noqa: E402
from .report import (  # noqa: E402
    RESULTS,
    device_line,
    load_average,
    pair_result,
    pair_rows,
    pair_summary_line,
    pair_targets,
    print_host,
    print_table,
    profile_each,
    profile_once,
    report_header,
    timing_rows,
    versions,
    write_report,
)
from .runs import (  # noqa: E402
    alternating_pair_runs,
    alternating_runs,
    describe_pair_run,
    first_loss_identical,
    loss_curve_diff,
    median_of,
    median_summary,
    pair_summary,
    paired_medians,
    ratios,
    timed_summary,
)
from .trl_side import (  # noqa: E402
    TRL_RUN_CHECKS,
    StepLossRecorder,
    adamw_as_alignkit,
    copy_trl_checks,
    labelled_split,
    labels_differ,
    pair_split,
    train_trl_quietly,
    train_trl_timed,
    trl_common_args,
    trl_model_and_optimizers,
    trl_optimisation_args,
    trl_optimizer_name,
    trl_run_fields,
)

__all__ = [
    "alternating_pair_runs",
    "online_trainer_section",
    "pair_result",
    "train_trl_timed",
    "paired_medians",
    "PairWorkload",
    "build_pair_workload",
    "read_pairs",
    "start_run",
    "fp32_model_section",
    "MODEL_SIZES",
    "MemoryMeter",
    "REPO",
    "RESULTS",
    "StepLossRecorder",
    "TRL_RUN_CHECKS",
    "adamw_as_alignkit",
    "add_adam_arguments",
    "add_common_arguments",
    "add_model_size_argument",
    "add_policy_arguments",
    "add_prompt_arguments",
    "add_rollout_arguments",
    "add_trl_optim_argument",
    "alignkit_common_sections",
    "alignkit_step_log",
    "alignkit_trainer_section",
    "alternating_runs",
    "benchmark_parser",
    "check_rollout_divides",
    "copy_trl_checks",
    "cpu_clock_at_metrics_log",
    "describe_pair_run",
    "describe_rollout_run",
    "device_line",
    "first_loss_identical",
    "labelled_split",
    "labels_differ",
    "load_average",
    "loss_curve_diff",
    "median_of",
    "median_summary",
    "memory_description",
    "memory_key_and_label",
    "metered",
    "pair_rows",
    "pair_split",
    "pair_summary",
    "pair_summary_line",
    "pair_targets",
    "parameter_count",
    "parse_checked",
    "patched",
    "policy_description",
    "print_host",
    "print_table",
    "profile_each",
    "profile_once",
    "quiet_libraries",
    "quiet_run_section",
    "ratios",
    "report_header",
    "rollout_recorder",
    "run_alignkit_timed",
    "run_rollout_timed",
    "sized_model",
    "step_batches",
    "step_clock_callback",
    "summarise_rollout_run",
    "timed",
    "timed_summary",
    "timing_rows",
    "train_sft_policy",
    "train_trl_quietly",
    "trl_common_args",
    "trl_model_and_optimizers",
    "trl_optimisation_args",
    "trl_optimizer_name",
    "trl_run_fields",
    "versions",
    "write_report",
]
