"""The common Lambda layer ships the core's data files (the OpenOps Code step, the SQL migrations), and
no program (the store migration command stays out)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig

from .conftest import Synthesized, command_line_programs


def test_the_staged_layer_reads_the_openops_code_step_from_package_data(synth: Synthesized) -> None:
    (layer,) = [
        path
        for path in synth.outdir.glob("asset.*")
        if (path / "python" / "tagcompliance" / "__init__.py").is_file()
    ]
    python = layer / "python"
    assert (python / "tagcompliance" / "remediation" / "scripts" / "openops_evaluation.js").is_file()
    assert sorted((python / "tagcompliance" / "store" / "migrations").glob("*.sql"))
    assert not command_line_programs(python)
    # -S: without the editable install's .pth, so only the staged layer can supply tagcompliance.
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(python)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        "from tagcompliance.remediation import openops\n"
        f"assert openops.__file__.startswith({str(python)!r}), openops.__file__\n"
        "assert 'export const code = async (inputs) =>' in openops.evaluation_script()\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
