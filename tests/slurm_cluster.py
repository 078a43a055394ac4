"""A private single-node SLURM cluster for the tests (fixture ``slurm_cluster``).

When ``munged``, ``slurmctld``, ``slurmd``, ``sbatch`` (and ``sinfo``, ``squeue``,
``scancel``) are on PATH — ``scripts/install-slurm`` installs Debian's ``slurm-wlm`` and
``munge`` — the fixture starts, under a temporary directory and nowhere else:

* ``munged`` (as the ``munge`` user when run as root) with its own 1 KiB random key
  (owned by munge, mode 400), its own socket, pid, log and seed files;
* ``slurmctld`` and ``slurmd`` (``-D``, in the background) from a ``slurm.conf`` with
  ``ClusterName``, ``SlurmctldHost`` and one ``NodeName`` equal to this host (CPUs=2),
  ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
  ``SelectType=select/cons_tres``, one partition, ``AuthInfo=socket=<its munged>``,
  its own state, spool, pid and log files and two free ports;

sets ``SLURM_CONF`` for the clients, waits until ``sinfo`` shows the node idle, yields
the cluster, and afterwards cancels its jobs, stops the three daemons (by their pids)
and removes the directory. Skipped, with the reason printed, only where the binaries
are absent. No system service or file (``/etc/munge``, ``/etc/slurm``) is touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "sinfo", "squeue", "scancel")
START_S = 60.0


@dataclass
class Cluster:
    """A running private cluster: its directory, config, node name and daemons."""

    root: Path
    conf: Path
    node: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=30)

    def logs(self) -> str:
        """The daemons' logs (for a failure message)."""
        out = []
        for p in sorted(self.root.glob("**/*.log")):
            out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


def missing() -> list[str]:
    """The binaries the cluster needs that are not on PATH."""
    return [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _slurm_conf(root: Path, node: str, munge_socket: Path, user: str) -> str:
    ctld_port, d_port = _free_ports(2)
    return f"""\
# private test cluster (tests/slurm_cluster.py)
ClusterName=nhjtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _start_munge(root: Path, as_root: bool) -> tuple[subprocess.Popen[bytes], Path]:
    d = root / "munge"
    d.mkdir()
    d.chmod(0o755)  # munged: clients must reach the socket; nothing in it is writable by others
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    user = "munge" if as_root else pwd.getpwuid(os.getuid()).pw_name
    if as_root:
        pw = pwd.getpwnam(user)
        for p in (d, key):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    sock = d / "munge.socket"
    cmd = ["munged", "-F", f"--socket={sock}", f"--key-file={key}", f"--log-file={d}/munged.log",
           f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, user=user if as_root else None, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    return proc, sock


def _wait(what: str, ok: object, cluster: Cluster, timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in cluster.procs.items():
            if p.poll() is not None:
                pytest.fail(
                    f"{name} exited with {p.returncode} while waiting for {what}\n{cluster.logs()}"
                )
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"the private SLURM cluster: no {what} after {timeout:.0f} s\n{cluster.logs()}")


def _stop(cluster: Cluster) -> None:
    if "slurmctld" in cluster.procs and cluster.procs["slurmctld"].poll() is None:
        cluster.run("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            q = cluster.run("squeue", "-h", "-o", "%i")
            if q.returncode != 0 or not q.stdout.strip():
                break
            time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):
        p = cluster.procs.get(name)
        if p is None or p.poll() is not None:
            continue
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Cluster]:
    """A private single-node SLURM cluster; ``SLURM_CONF`` points the clients at it."""
    absent = missing()
    if absent:
        reason = (
            f"SLURM/MUNGE not installed ({', '.join(absent)} not on PATH): scripts/install-slurm"
        )
        print(f"\nskipping the SLURM tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    as_root = os.getuid() == 0
    root = Path(tempfile.mkdtemp(prefix="nhj-slurm-"))
    root.chmod(0o755)  # munged (the munge user) reaches its directory through it
    node = socket.gethostname().split(".")[0]
    user = pwd.getpwuid(os.getuid()).pw_name
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    env = dict(os.environ)
    cluster = Cluster(root, root / "slurm.conf", node, env)
    try:
        munged, sock = _start_munge(root, as_root)
        cluster.procs["munged"] = munged
        _wait("munge socket", lambda: sock.exists(), cluster)
        cluster.conf.write_text(_slurm_conf(root, node, sock, user))
        env["SLURM_CONF"] = str(cluster.conf)
        for daemon in ("slurmctld", "slurmd"):
            cluster.procs[daemon] = subprocess.Popen(
                [daemon, "-D", "-f", str(cluster.conf)], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait(
            "idle node in sinfo",
            lambda: cluster.run("sinfo", "-h", "-N", "-o", "%t").stdout.strip() == "idle",
            cluster,
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", str(cluster.conf))
            yield cluster
    finally:
        _stop(cluster)
        shutil.rmtree(root, ignore_errors=True)
