"""scripts/test_matrix.sh (make test-matrix) never passes silently: where it cannot build or enter
debootstrap roots (not root) it names every skipped Debian release, and S1S2_MATRIX_REQUIRED=1
turns the skip into a failure. The roots themselves are exercised by running the matrix."""
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "test_matrix.sh")


@pytest.fixture
def run_unprivileged():
    """Runs a copy of the script as an unprivileged user (nobody when we are root)."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root without setpriv: cannot drop privileges")
    folder = tempfile.mkdtemp(prefix="s1s2-matrix-test-")
    os.makedirs(os.path.join(folder, "scripts"))
    shutil.copy(SCRIPT, os.path.join(folder, "scripts"))
    for path in (folder, os.path.join(folder, "scripts")):
        os.chmod(path, 0o777)

    def run(**env):
        env = dict(os.environ, S1S2_MATRIX_HOST="0", S1S2_MATRIX_LOGS=folder,
                   S1S2_MATRIX_DIR=os.path.join(folder, "roots"), **env)
        command = ["bash", os.path.join(folder, "scripts", "test_matrix.sh")]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    yield run
    shutil.rmtree(folder)


def test_not_root_is_a_loud_skip_of_every_release(run_unprivileged):
    done = run_unprivileged(S1S2_MATRIX_SUITES="trixie sid")
    assert done.returncode == 0
    assert "NOT TESTED (SKIPPED)" in done.stderr and "MATRIX INCOMPLETE" in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert [line.split()[2] for line in lines] == ["trixie", "sid"]
    assert not any(line.startswith("PASS") for line in done.stdout.splitlines())


def test_a_required_matrix_that_cannot_run_fails(run_unprivileged):
    done = run_unprivileged(S1S2_MATRIX_SUITES="trixie", S1S2_MATRIX_REQUIRED="1")
    assert done.returncode == 2
    assert "SKIPPED" in done.stdout
