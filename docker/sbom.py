"""The dev image's SBOM, made inside a container of the image itself (`cargo xtask sbom` runs it
with --network none): CycloneDX 1.6 JSON of

- the Python environment /opt/venv, by cyclonedx-py (`cyclonedx-py environment`, run from the
  read-only tools folder mounted at TOOLS — never installed into the image), each package with
  the sha256 the lock (LOCK, python/pylock.toml) gives for the wheel this platform installs;
- the Debian packages, from the image's dpkg database (/var/lib/dpkg/status), as
  `pkg:deb/debian/<name>@<version>?arch=…&distro=debian-<version>`;
- with the image as the subject (metadata.component: type container, the image's digest as its
  SHA-256 hash, its OCI labels as properties),

then validated against the CycloneDX 1.6 JSON schema that cyclonedx-python-lib ships, and
written to OUT. Usage: python sbom.py TOOLS LOCK OUT IMAGE_JSON (IMAGE_JSON: {"name", "id",
"digest", "labels"} from `image inspect` on the host). Exit 1 with one line on any problem.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
import tempfile
import uuid
from pathlib import Path

VENV_PYTHON = "/opt/venv/bin/python"
DPKG_STATUS = Path("/var/lib/dpkg/status")


def python_bom(tools: str) -> dict:
    """cyclonedx-py's BOM of the venv (its own packages stay out: they are only on this
    process's sys.path, not on the analysed interpreter's)."""
    out = Path(tempfile.mkdtemp()) / "python.cdx.json"
    argv = sys.argv
    sys.argv = ["cyclonedx-py", "environment", "--sv", "1.6", "--of", "JSON", "-o", str(out)]
    sys.argv.append(VENV_PYTHON)
    try:
        runpy.run_module("cyclonedx_py", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code not in (0, None):
            raise SystemExit(f"sbom: cyclonedx-py failed (exit {e.code})") from None
    finally:
        sys.argv = argv
    return json.loads(out.read_text())


def debian_packages() -> list[dict[str, str]]:
    """The installed packages of the dpkg database, one dict of fields each."""
    out, cur, last = [], {}, None
    for line in DPKG_STATUS.read_text(encoding="utf-8", errors="replace").splitlines() + [""]:
        if not line.strip():
            if cur.get("Status", "").endswith(" installed"):
                out.append(cur)
            cur, last = {}, None
        elif line[0] in " \t" and last:
            continue  # continuation lines (descriptions, conffiles)
        else:
            key, _, value = line.partition(":")
            cur[key], last = value.strip(), key
    return out


def os_release() -> dict[str, str]:
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        k, _, v = line.partition("=")
        fields[k] = v.strip().strip('"')
    return fields


def deb_components(purl_cls) -> list[dict]:
    distro = f"debian-{os_release().get('VERSION_ID', 'unknown')}"
    comps = []
    for p in sorted(debian_packages(), key=lambda p: p["Package"]):
        purl = purl_cls(
            type="deb",
            namespace="debian",
            name=p["Package"],
            version=p["Version"],
            qualifiers={"arch": p.get("Architecture", "all"), "distro": distro},
        ).to_string()
        comp = {
            "type": "library",
            "bom-ref": purl,
            "name": p["Package"],
            "version": p["Version"],
            "purl": purl,
        }
        desc = p.get("Description", "")
        if desc:
            comp["description"] = desc
        if p.get("Source"):
            src = p["Source"].split()[0]
            comp["properties"] = [{"name": "debian:source", "value": src}]
        comps.append(comp)
    return comps


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_hashes(lock_path: Path) -> dict[tuple[str, str], str]:
    """(name, version) → the sha256 of the wheel this interpreter would install (the first
    compatible one in its tag order), or of the sdist when no wheel fits."""
    import tomllib

    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    order = {str(t): i for i, t in enumerate(sys_tags())}
    doc = tomllib.loads(lock_path.read_text())
    out: dict[tuple[str, str], str] = {}
    for pkg in doc.get("packages", []):
        key = (norm(pkg["name"]), str(pkg.get("version", "")))
        best = None
        for wheel in pkg.get("wheels", []):
            filename = wheel.get("name") or wheel.get("url", "").rsplit("/", 1)[-1]
            try:
                _, _, _, tags = parse_wheel_filename(filename)
            except ValueError:
                continue
            rank = min((order[str(t)] for t in tags if str(t) in order), default=None)
            sha = (wheel.get("hashes") or {}).get("sha256")
            if rank is not None and sha and (best is None or rank < best[0]):
                best = (rank, sha)
        if best is None and pkg.get("sdist", {}).get("hashes", {}).get("sha256"):
            best = (1 << 30, pkg["sdist"]["hashes"]["sha256"])
        if best is not None and key not in out:
            out[key] = best[1]
    return out


def main() -> None:
    tools, lock, out, image_json = sys.argv[1:5]
    sys.path.insert(0, tools)
    image = json.loads(image_json)
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    bom = python_bom(tools)
    hashes = lock_hashes(Path(lock))
    for comp in bom.get("components", []):
        sha = hashes.get((norm(comp.get("name", "")), comp.get("version", "")))
        if sha and not any(h.get("alg") == "SHA-256" for h in comp.get("hashes", [])):
            comp.setdefault("hashes", []).append({"alg": "SHA-256", "content": sha})
    bom.setdefault("components", []).extend(deb_components(PackageURL))

    digest = image.get("digest") or image["id"]  # a repo digest once pushed, else the config's
    hexdigest = digest.split("sha256:", 1)[-1]
    name = image["name"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    subject = {
        "type": "container",
        "bom-ref": f"image:{digest}",
        "name": name,
        "version": f"sha256:{hexdigest}",
        "hashes": [{"alg": "SHA-256", "content": hexdigest}],
        "purl": PackageURL(type="oci", name=name, version=f"sha256:{hexdigest}").to_string(),
        "properties": [{"name": k, "value": v} for k, v in sorted(image["labels"].items())]
        + [{"name": "lexalign:image-id", "value": image["id"]}],
    }
    meta = bom.setdefault("metadata", {})
    meta["component"] = subject
    created = image["labels"].get("org.opencontainers.image.created")
    if created:
        meta["timestamp"] = created  # the image's own date: the same image, the same SBOM
    tools_meta = meta.setdefault("tools", {})
    if isinstance(tools_meta, dict):
        tools_meta.setdefault("components", []).append(
            {"type": "application", "group": "lexalign", "name": "cargo xtask sbom"}
        )
    bom["serialNumber"] = uuid.uuid5(uuid.NAMESPACE_URL, f"lexalign-sbom:{digest}").urn
    refs = [c["bom-ref"] for c in bom["components"] if "bom-ref" in c]
    bom.setdefault("dependencies", []).append({"ref": subject["bom-ref"], "dependsOn": refs})
    text = json.dumps(bom, indent=2, sort_keys=False)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise SystemExit(f"sbom: the SBOM does not validate against CycloneDX 1.6: {error}")
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, out)
    print(
        json.dumps(
            {
                "components": len(bom["components"]),
                "pypi": sum(1 for c in bom["components"] if c.get("purl", "").startswith("pkg:pypi/")),
                "deb": sum(1 for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/")),
                "hashed": sum(1 for c in bom["components"] if c.get("hashes")),
            }
        )
    )


if __name__ == "__main__":
    main()
