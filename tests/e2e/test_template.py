"""The deployable example's SAM template, validated by cfn-lint (a real tool)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "template.yaml"


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert executable, "cfn-lint is part of the dev extra"
    return subprocess.run(
        [executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_template_passes_cfn_lint() -> None:
    done = _cfn_lint(TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("PAY_PER_REQUEST", "FREE"))
    done = _cfn_lint(broken)
    assert done.returncode != 0
    assert "FREE" in done.stdout


@pytest.mark.parametrize(
    "needle",
    [
        "Tracing: Active",
        "ReportBatchItemFailures",
        "AWS::SQS::Queue",
        "AWS::SSM::Parameter",
        "AWS::DynamoDB::Table",
        "SQSSendMessagePolicy",
        "DynamoDBWritePolicy",
        "deadLetterTargetArn",
    ],
)
def test_template_has_what_the_readme_promises(needle: str) -> None:
    assert needle in TEMPLATE.read_text()
