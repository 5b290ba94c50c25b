"""schemathesis against the OpenAPI schema the app publishes, through nginx: no answer
is a 5xx, and every status code, content type, header and body conforms to the schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack.compose import Stack

pytestmark = pytest.mark.stack

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Checks left out, on purpose: `positive_data_acceptance` wants every schema-valid request
# accepted, but a taken room slug or a wrong password is a 400 by DRF's convention;
# `negative_data_rejection` wants a malformed `page_size` refused, where DRF's paginators
# fall back to the default size; `unsupported_method` wants an Allow header on the 405
# that nginx itself gives to TRACE.
LEFT_OUT = "positive_data_acceptance,negative_data_rejection,unsupported_method"


def test_fuzzing_the_api_schema_through_nginx_finds_no_5xx_and_no_nonconforming_answer(
    stack: Stack, token: str
) -> None:
    seed = os.environ.get("FUZZ_SEED", "20261122")  # fixed in CI; FUZZ_SEED=$RANDOM to explore
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{stack.http}/api/schema/",
            "--header",
            f"Authorization: Token {token}",
            "--checks",
            "all",
            "--exclude-checks",
            LEFT_OUT,
            # Logging out ends the token every other case (and test) authenticates with.
            "--exclude-path-regex",
            "^/api/auth/logout",
            "--max-examples",
            os.environ.get("FUZZ_EXAMPLES", "50"),
            # Under nginx's per-address API rate (20 r/s), so the cases reach the app.
            "--rate-limit",
            "15/s",
            "--seed",
            seed,
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts, result.stdout[-2000:]
    assert int(counts[1]) >= 100, "the fuzzer hardly ran"
    print(f"schemathesis (seed {seed}): {counts[1]} cases generated, {counts[2]} passed, 0 failures")
