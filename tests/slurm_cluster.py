"""A real single-node Slurm on loopback, for the cluster tests.

`SlurmCluster` writes a munge key and a `slurm.conf` into a temporary
directory, starts `munged`, `slurmctld` and `slurmd` there, waits until the
node is idle and stops every daemon it started by PID. The daemons listen on
127.0.0.1 only, on free ports picked at start.

Two facts shape the set-up. Slurm client commands that find no config look
the controller up in DNS, so the config is written before any client runs.
The executor plugin's job step drops `SLURM_CONF` from the environment, so
the config is also copied to the default path (`/etc/slurm/slurm.conf`),
but only when no other config is there; it is removed again on stop.

Run as a script to keep a cluster up by hand (Ctrl-C stops it):
    python tests/slurm_cluster.py
"""

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
# Held while a test cluster owns DEFAULT_CONF: two test runs on one machine
# take turns instead of overwriting each other's config.
LOCK_FILE = Path("/tmp/neuralcode-slurm-test.lock")
# Written into our config so that stop() removes only a file we wrote.
MARKER = "# written by neuralcode tests/slurm_cluster.py"
NODE = "localhost"
# The plugin waits this long before its first status query; squeue only sees
# a finished job for MinJobAge seconds, which must exceed 3x the wait.
INIT_STATUS_WAIT = 5
MIN_JOB_AGE = 600


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run here (packages missing, not root, config taken)."""


def _missing_binaries():
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [b for b in BINARIES if shutil.which(b, path=search) is None]


def ensure_packages():
    """Install the Debian packages when a binary is missing; raise
    SlurmUnavailable with the reason when that is impossible."""
    if not _missing_binaries():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SlurmUnavailable(
            "Slurm is not installed and cannot be installed here (needs root "
            f"and apt-get): install the Debian packages {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    result = subprocess.run(install, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        result = subprocess.run(install, capture_output=True, text=True, env=env)
    if result.returncode != 0 or _missing_binaries():
        raise SlurmUnavailable(
            f"installing {' '.join(PACKAGES)} failed:\n{result.stderr[-2000:]}"
        )


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sbin(name):
    return shutil.which(name, path="/usr/sbin:/sbin:" + os.environ["PATH"])


class SlurmCluster:
    """One controller and one compute node on 127.0.0.1, with a fake GPU.

    The node advertises `Gres=gpu:1` backed by /dev/null, so a job can ask
    for and receive a GPU allocation without a GPU. Finished jobs stay
    visible to `squeue` and `scontrol` for MIN_JOB_AGE seconds.
    The node may claim more CPUs and memory than the machine has
    (`config_overrides`), so that jobs sized for a cluster still schedule.
    """

    def __init__(self, root, cpus=4, memory_mb=16000):
        self.root = Path(root)
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.conf = self.root / "etc/slurm.conf"
        self._procs = {}
        self._wrote_default_conf = False

    # -- configuration --------------------------------------------------

    def _write_configs(self):
        for sub in ("etc", "log", "run", "state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge/munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        self.munge_socket = self.root / "munge/munge.socket"
        r = self.root
        lines = [
            MARKER,
            "ClusterName=neuralcode-test",
            f"SlurmctldHost={NODE}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/run/slurmctld.pid",
            f"SlurmdPidFile={r}/run/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/builtin",
            "GresTypes=gpu",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            f"MinJobAge={MIN_JOB_AGE}",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} Gres=gpu:1 State=UNKNOWN",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (self.root / "etc/gres.conf").write_text(
            f"NodeName={NODE} Name=gpu File=/dev/null\n"
        )

    def _lock(self, timeout):
        self._lock_fh = open(LOCK_FILE, "w")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_fh.close()
                    raise SlurmUnavailable(
                        f"another test cluster held {LOCK_FILE} for {timeout} s"
                    ) from None
                time.sleep(2)

    def _unlock(self):
        fh = getattr(self, "_lock_fh", None)
        if fh is not None:
            fh.close()  # closing releases the lock
            self._lock_fh = None

    def _install_default_conf(self):
        if DEFAULT_CONF.exists():
            if MARKER not in DEFAULT_CONF.read_text(errors="replace"):
                raise SlurmUnavailable(
                    f"{DEFAULT_CONF} belongs to another Slurm; the test does "
                    "not overwrite it (run it on a machine without Slurm)"
                )
        try:
            DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.conf, DEFAULT_CONF)
        except PermissionError as err:
            raise SlurmUnavailable(f"cannot write {DEFAULT_CONF}: {err}") from err
        self._wrote_default_conf = True

    @property
    def env(self):
        """Environment for clients: the config and the sbin directories."""
        path = os.environ["PATH"] + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    # -- daemons ---------------------------------------------------------

    def _spawn(self, name, argv):
        log = open(self.root / f"log/{name}.out", "w")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        self._procs[name] = proc
        return proc

    def start(self, timeout=90):
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root to launch jobs")
        ensure_packages()
        self._lock(timeout=1200)
        try:
            self._write_configs()
            self._install_default_conf()
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_daemons(self, timeout):
        r = self.root
        self._spawn(
            "munged",
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={r}/munge/munge.key",
                f"--pid-file={r}/run/munged.pid",
                f"--seed-file={r}/munge/munged.seed",
                f"--log-file={r}/log/munged.log",
            ],
        )
        self._wait_for(self.munge_socket.exists, 20, "munged socket")
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait_for(self.node_idle, timeout, "node idle")

    def node_idle(self):
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.root}/log"
                )
        result = self.client("sinfo", "-h", "-N", "-o", "%t")
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def client(self, *argv, check=False):
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=20, check=check
        )

    def _wait_for(self, check, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(1)
        raise RuntimeError(
            f"Slurm test cluster: no {what} after {timeout} s; logs in {self.root}/log"
        )

    def stop(self):
        """Cancel leftover jobs, stop the daemons this object started, by PID,
        and remove the default-path config it wrote."""
        if "slurmctld" in self.running():
            self._cancel_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._wrote_default_conf:
            DEFAULT_CONF.unlink(missing_ok=True)
            self._wrote_default_conf = False
        self._unlock()

    def _cancel_jobs(self, timeout=30):
        def queued():
            return self.client(
                "squeue", "-h", "-t", "PD,R,CG", "-o", "%i"
            ).stdout.split()

        jobs = queued()
        if jobs:
            self.client("scancel", *jobs)
            deadline = time.monotonic() + timeout
            while queued() and time.monotonic() < deadline:
                time.sleep(1)

    def running(self):
        """Names of the daemons still alive."""
        return [n for n, p in self._procs.items() if p.poll() is None]

    def jobs(self):
        """Every job the controller still knows (finished ones for MinJobAge
        seconds), as dicts of `scontrol -o -d show job` fields; the allocated
        generic resources are under JOB_GRES."""
        out = self.client("scontrol", "-o", "-d", "show", "job", check=True).stdout
        jobs = []
        for line in out.splitlines():
            fields = {}
            for item in line.split():
                key, sep, value = item.partition("=")
                if sep:
                    fields.setdefault(key, value)
            if fields:
                jobs.append(fields)
        return jobs

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _stop_on(signum, frame):
    # Once: a second signal must not interrupt the clean-up.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    import tempfile

    # SIGTERM and SIGHUP stop the cluster as Ctrl-C does; SIGINT too when a
    # shell started this in the background (which ignores SIGINT for it).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on)
    with tempfile.TemporaryDirectory() as tmp, SlurmCluster(tmp) as cluster:
        print(
            f"Slurm up; export SLURM_CONF={cluster.conf}  (Ctrl-C or kill stops it)",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
