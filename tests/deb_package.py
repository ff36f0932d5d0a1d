#!/usr/bin/env python3
"""cpack -G DEB builds a .deb whose files (dpkg-deb -c) are exactly the
install manifest of `cmake --install --prefix /usr` (staged with DESTDIR);
its control names the package, version and the shared libraries it needs
(dpkg-shlibdeps); its maintainer scripts parse; the units (the compositor's
and the relays' template gos-relay@.service) and the man page name /usr;
unpacked anywhere, its gos-compositor finds the viewer beside it.

usage: deb_package.py BUILD_DIR SOURCE_DIR"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, report  # noqa: E402
from gos_proc import skip  # noqa: E402

NAME = "deb_package"


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def main():
    build, src = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
        if not shutil.which(tool):
            skip(NAME, f"{tool} not found (cmake, dpkg-dev: tools/setup.sh installs them)")
    tmp = tempfile.mkdtemp(prefix="gos-deb-")
    try:
        r = run(["cpack", "-G", "DEB", "-B", os.path.join(tmp, "pkg"),
                 "--config", os.path.join(build, "CPackConfig.cmake")], cwd=build)
        debs = glob.glob(os.path.join(tmp, "pkg", "*.deb"))
        if not check(r.returncode == 0 and len(debs) == 1, f"cpack -G DEB makes one .deb: {r.stdout}{r.stderr}"):
            return report(NAME)
        deb = debs[0]
        check(re.fullmatch(r"gos_0\.1\.0_[a-z0-9]+\.deb", os.path.basename(deb)),
              f"the .deb is named gos_VERSION_ARCH.deb: {os.path.basename(deb)}")

        # Its files against the install manifest of the same install under /usr.
        stage = os.path.join(tmp, "stage")
        r = run(["cmake", "--install", build, "--prefix", "/usr"], env=dict(os.environ, DESTDIR=stage))
        check(r.returncode == 0, f"DESTDIR=... cmake --install --prefix /usr: {r.stdout}{r.stderr}")
        manifest = set()
        for line in open(os.path.join(build, "install_manifest.txt")).read().split():
            manifest.add(line[len(stage):] if line.startswith(stage) else line)
        r = run(["dpkg-deb", "-c", deb])
        files, others = set(), []
        for line in r.stdout.splitlines():
            path = line.split()[-1]
            if line.startswith("-"):
                files.add(path[1:] if path.startswith("./") else path)
            elif not line.startswith("d"):
                others.append(line)
        check(r.returncode == 0 and files, "dpkg-deb -c lists the .deb's files")
        check(files == manifest, f"the .deb holds the install manifest: only in the .deb "
              f"{sorted(files - manifest)}, only in the manifest {sorted(manifest - files)}")
        check(not others, f"the .deb holds only files and folders: {others}")
        for want in ("/usr/bin/gos-compositor", "/usr/share/gos/web/index.html",
                     "/usr/lib/systemd/system/gos-compositor.service",
                     "/usr/lib/systemd/system/gos-relay@.service", "/usr/bin/gos-relay",
                     "/usr/share/man/man1/gos-compositor.1",
                     "/usr/share/gos/grafana/gos.json", "/usr/share/gos/prometheus/gos-rules.yml"):
            check(want in files, f"the .deb has {want}")

        fields = {}
        for f in ("Package", "Version", "Architecture", "Depends", "Recommends", "Maintainer", "Description"):
            fields[f] = run(["dpkg-deb", "-f", deb, f]).stdout.strip()
        check(fields["Package"] == "gos" and fields["Version"] == "0.1.0", f"Package gos, Version 0.1.0: {fields}")
        for lib in ("libwebsockets", "libvulkan1", "libcjson", "libc6", "libglfw3", "libpng16"):
            check(lib in fields["Depends"], f"Depends (dpkg-shlibdeps) names {lib}: {fields['Depends']}")
        check("fonts-dejavu-core" in fields["Recommends"], f"Recommends the fonts: {fields['Recommends']}")

        ctl = os.path.join(tmp, "control")
        check(run(["dpkg-deb", "-e", deb, ctl]).returncode == 0, "dpkg-deb -e unpacks the control area")
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctl, script)
            ok = os.path.isfile(path) and os.access(path, os.X_OK)
            check(ok and run(["sh", "-n", path]).returncode == 0, f"{script} is an executable that sh parses")

        root = os.path.join(tmp, "root")
        check(run(["dpkg-deb", "-x", deb, root]).returncode == 0, "dpkg-deb -x unpacks the files")
        unit = open(os.path.join(root, "usr/lib/systemd/system/gos-compositor.service")).read()
        check(re.search(r"^ExecStart=/usr/bin/gos-compositor ", unit, re.M), "the .deb's unit starts /usr/bin/gos-compositor")
        relay = open(os.path.join(root, "usr/lib/systemd/system/gos-relay@.service")).read()
        check(re.search(r"^ExecStart=/usr/bin/gos-relay \$GOS_RELAY_ARGS$", relay, re.M),
              "the .deb's relay unit starts /usr/bin/gos-relay")
        man = open(os.path.join(root, "usr/share/man/man1/gos-compositor.1")).read().replace("\\-", "-")
        check("/usr/share/gos/web" in man and src not in man, "the .deb's man page names /usr/share/gos/web")
        r = run([os.path.join(root, "usr/bin/gos-compositor"), "--help"])
        check(os.path.join(root, "usr/share/gos/web") in r.stdout,
              "the unpacked gos-compositor finds the viewer beside it")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(NAME)


if __name__ == "__main__":
    sys.exit(main())
