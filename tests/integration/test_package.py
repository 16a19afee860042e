#!/usr/bin/env python3
"""Install and packaging (issue 13): a build with the prefix /usr packs a
Debian package with CPack whose unit names the paths the package installs,
whose man pages are there, and whose binary checks its own shipped config.
The package is unpacked into a temporary root (dpkg-deb -x), not installed
into this machine; EL_TEST_DPKG_INSTALL=1 (as root) also runs dpkg -i, the
installed einlass -t, and dpkg --purge."""
import glob
import os
import re
import shutil
import subprocess
import tempfile

from einlass_test import SRC, run

TMP = None
DEB = None


def sh(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def setup():
    global TMP, DEB
    TMP = tempfile.mkdtemp(prefix="el-pkg-")
    build = os.path.join(TMP, "build")
    sh(["cmake", "-S", SRC, "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr",
        "-DCMAKE_BUILD_TYPE=Release", "-DEINLASS_TESTS=OFF"])
    sh(["cmake", "--build", build, "-j2", "--target", "einlass", "man"])
    sh(["cpack", "-G", "DEB"], cwd=build)
    debs = glob.glob(os.path.join(build, "einlass_*.deb"))
    assert len(debs) == 1, debs
    DEB = debs[0]


def test_deb_metadata_names_dependencies_and_conffiles():
    info = sh(["dpkg-deb", "-I", DEB])
    assert re.search(r"Package: einlass\n", info), info
    deps = re.search(r"Depends: (.*)", info).group(1)
    for lib in ("libevent", "libssl3", "libhiredis", "libinih"):
        assert lib in deps, deps
    sh(["dpkg-deb", "-e", DEB, os.path.join(TMP, "ctrl")])
    conffiles = open(os.path.join(TMP, "ctrl", "conffiles")).read()
    assert "/etc/einlass/einlass.conf\n" in conffiles, conffiles


def test_deb_unit_points_at_what_the_package_installs():
    root = os.path.join(TMP, "root")
    sh(["dpkg-deb", "-x", DEB, root])
    files = sh(["dpkg-deb", "-c", DEB])
    for path in ("./usr/sbin/einlass", "./etc/einlass/einlass.conf",
                 "./etc/einlass/waiting-room.html", "./usr/lib/systemd/system/einlass.service",
                 "./usr/share/man/man8/einlass.8", "./usr/share/man/man5/einlass.conf.5"):
        assert path in files, (path, files)
    unit = open(os.path.join(root, "usr/lib/systemd/system/einlass.service")).read()
    for exe in re.findall(r"^Exec\w+=(/\S+)", unit, re.M):
        if exe.startswith("/bin/"):
            continue
        assert os.path.exists(root + exe), exe
    confs = re.findall(r"/einlass (?:-t )?-c (\S+)", unit)
    assert len(confs) == 3, confs
    for conf in confs:
        assert os.path.exists(root + conf), conf
    assert "@" not in re.sub(r"@(system-service|privileged|resources)", "", unit)
    man5 = open(os.path.join(root, "usr/share/man/man5/einlass.conf.5")).read()
    assert ".B admit_per_s" in man5 and ".B max_joins_per_ip_per_min" in man5


def test_default_prefix_unit_names_the_default_prefix():
    build = os.path.join(TMP, "build-default")
    sh(["cmake", "-S", SRC, "-B", build, "-DEINLASS_TESTS=OFF"])  # prefix /usr/local
    unit = open(os.path.join(build, "einlass.service")).read()
    assert "ExecStart=/usr/local/sbin/einlass -c /usr/local/etc/einlass/einlass.conf\n" in unit, \
        unit
    assert "/usr/sbin/" not in unit and " /etc/einlass" not in unit


def test_packaged_einlass_checks_the_packaged_config():
    root = os.path.join(TMP, "root")
    if not os.path.isdir(root):
        sh(["dpkg-deb", "-x", DEB, root])
    exe = os.path.join(root, "usr/sbin/einlass")
    assert sh([exe, "-v"]).strip()
    # The shipped config reads /var/lib/einlass/secret, which postinst
    # makes; here the same file points at a secret in the temporary root.
    conf = os.path.join(root, "etc/einlass/einlass.conf")
    secret = os.path.join(root, "secret")
    with open(secret, "w") as f:
        f.write("ab" * 32 + "\n")
    text = open(conf).read()
    assert "\nsecret_file = /var/lib/einlass/secret\n" in text
    with open(conf, "w") as f:
        f.write(text.replace("/var/lib/einlass/secret", secret))
    p = subprocess.run([exe, "-t", "-c", conf], capture_output=True, text=True)
    assert p.returncode == 0 and "configuration ok" in p.stderr, p.stderr
    ctrl = os.path.join(TMP, "ctrl")
    if not os.path.isdir(ctrl):
        sh(["dpkg-deb", "-e", DEB, ctrl])
    assert os.access(os.path.join(ctrl, "postinst"), os.X_OK)


def test_dpkg_install_then_check_then_purge():
    if os.environ.get("EL_TEST_DPKG_INSTALL") != "1" or os.geteuid() != 0:
        print("     (skipped: set EL_TEST_DPKG_INSTALL=1 as root to dpkg -i into this machine)")
        return
    had_state = os.path.exists("/var/lib/einlass")
    sh(["dpkg", "-i", DEB])
    try:
        p = subprocess.run(["/usr/sbin/einlass", "-t", "-c", "/etc/einlass/einlass.conf"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    finally:
        sh(["dpkg", "--purge", "einlass"])
    assert had_state or not os.path.exists("/var/lib/einlass")


if __name__ == "__main__":
    try:
        setup()
        run([test_deb_metadata_names_dependencies_and_conffiles,
             test_deb_unit_points_at_what_the_package_installs,
             test_default_prefix_unit_names_the_default_prefix,
             test_packaged_einlass_checks_the_packaged_config,
             test_dpkg_install_then_check_then_purge])
    finally:
        if TMP:
            shutil.rmtree(TMP, ignore_errors=True)
