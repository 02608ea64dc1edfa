"""``import alignkit.losses`` needs torch alone."""

import subprocess
import sys


def test_losses_import_pulls_in_no_training_stack():
    code = (
        "import sys, alignkit.losses\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('transformers', 'accelerate', 'datasets', 'deepspeed', 'peft')]\n"
        "bad = [m for m in sys.modules if m.startswith('alignkit.') and not m.startswith('alignkit.losses')]\n"
        "assert not heavy and not bad, (heavy, bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
