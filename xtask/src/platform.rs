//! Target platforms (linux/amd64, linux/arm64), pure: parsing `--platform`, the tags a build
//! for a platform gets, and whether the lock has a wheel for every package selected there
//! (markers evaluated by `marker`, wheel tags matched for manylinux).

use crate::lockfile::Lock;
use crate::marker::marker_holds;
use crate::policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    Amd64,
    Arm64,
}

pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

impl Arch {
    /// `--platform` value → arch; anything else is an error naming the supported values.
    pub fn parse_platform(s: &str) -> Result<Arch, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linux/amd64" | "linux/x86_64" | "linux/amd64/v1" | "linux/amd64/v2" | "linux/amd64/v3" => {
                Ok(Arch::Amd64)
            }
            "linux/arm64" | "linux/arm64/v8" | "linux/aarch64" => Ok(Arch::Arm64),
            _ => Err(format!(
                "--platform {s}: unsupported; use linux/amd64 or linux/arm64 (the torch 2.6 stack has wheels for those two)"
            )),
        }
    }
    /// The engine's or an image's `Architecture` (x86_64, amd64, aarch64, arm64).
    pub fn from_engine(arch: &str) -> Option<Arch> {
        match arch.trim() {
            "x86_64" | "amd64" => Some(Arch::Amd64),
            "aarch64" | "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }
    pub fn platform(self) -> &'static str {
        match self {
            Arch::Amd64 => "linux/amd64",
            Arch::Arm64 => "linux/arm64",
        }
    }
    /// Docker's and Debian's name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
    /// The kernel's (`uname -m`, PEP 508 `platform_machine`, qemu's binfmt entry).
    pub fn machine(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }
}

/// The default tag of an image built for `arch`: the plain tag for the engine's own platform,
/// `<tag>-<arch>` for another, so a foreign build never overwrites the native default.
pub fn default_tag(base: &str, arch: Arch, native: Arch) -> String {
    if arch == native {
        base.to_string()
    } else {
        format!("{base}-{}", arch.name())
    }
}

/// The registry-free base image for `arch` (same rule as `default_tag`).
pub fn debian_base(arch: Arch, native: Arch) -> String {
    default_tag(policy::DEBIAN_BASE, arch, native)
}

/// Can this wheel (file name) install on Linux/CPython 3.11 (glibc 2.36, Debian bookworm) for
/// `arch`?
pub fn wheel_fits(file: &str, arch: Arch) -> bool {
    let Some(stem) = file.strip_suffix(".whl") else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return false;
    }
    let (py, abi, plat) = (
        parts[parts.len() - 3],
        parts[parts.len() - 2],
        parts[parts.len() - 1],
    );
    let py_ok = py.split('.').any(|p| {
        matches!(p, "py3" | "py311" | "cp311")
            || (abi == "abi3"
                && p.starts_with("cp3")
                && p[3..].parse::<u32>().is_ok_and(|v| v <= 11))
    });
    let abi_ok = matches!(abi, "none" | "abi3" | "cp311");
    let plat_ok = plat.split('.').any(|p| {
        if p == "any" {
            return true;
        }
        let m = arch.machine();
        if p == format!("manylinux2014_{m}") || p == format!("linux_{m}") {
            return true;
        }
        if p == format!("manylinux1_{m}") || p == format!("manylinux2010_{m}") {
            return true;
        }
        // manylinux_2_X_<machine>, X ≤ 36
        p.strip_prefix("manylinux_2_")
            .and_then(|r| r.strip_suffix(&format!("_{m}")))
            .and_then(|x| x.parse::<u32>().ok())
            .is_some_and(|x| x <= 36)
    });
    py_ok && abi_ok && plat_ok
}

/// Packages the lock selects on `arch` that have no wheel for it ("name version").
pub fn missing_wheels(lock: &Lock, arch: Arch) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in &lock.packages {
        if let Some(m) = &p.marker {
            if !marker_holds(m, arch.machine())
                .map_err(|e| format!("{} marker {m:?}: {e}", p.name))?
            {
                continue;
            }
        }
        let built_here = p.sdist && crate::policy::BUILT_FROM_SDIST.contains(&p.name.as_str());
        if !built_here && !p.wheels.iter().any(|w| wheel_fits(w, arch)) {
            out.push(format!("{} {}", p.name, p.version));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_name_themselves() {
        assert_eq!(Arch::parse_platform("linux/arm64"), Ok(Arch::Arm64));
        assert_eq!(Arch::parse_platform("linux/arm64/v8"), Ok(Arch::Arm64));
        assert_eq!(Arch::parse_platform("linux/amd64"), Ok(Arch::Amd64));
        for bad in ["arm64", "linux/s390x", "windows/amd64", ""] {
            assert!(Arch::parse_platform(bad)
                .unwrap_err()
                .contains("linux/amd64 or linux/arm64"));
        }
        assert_eq!(Arch::from_engine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_engine("x86_64"), Some(Arch::Amd64));
        assert_eq!(
            default_tag("lexalign-dev:latest", Arch::Arm64, Arch::Amd64),
            "lexalign-dev:latest-arm64"
        );
        assert_eq!(
            default_tag("lexalign-dev:latest", Arch::Amd64, Arch::Arm64),
            "lexalign-dev:latest-amd64"
        );
        assert_eq!(
            default_tag("lexalign-dev:latest", Arch::Amd64, Arch::Amd64),
            "lexalign-dev:latest"
        );
        assert_eq!(
            debian_base(Arch::Arm64, Arch::Amd64),
            "lexalign/python:3.11-bookworm-arm64"
        );
    }

    #[test]
    fn wheel_tags_match_the_platform() {
        let a = "torch-2.6.0-cp311-cp311-manylinux_2_28_aarch64.whl";
        assert!(wheel_fits(a, Arch::Arm64) && !wheel_fits(a, Arch::Amd64));
        let b = "bitsandbytes-0.45.5-py3-none-manylinux_2_24_x86_64.whl";
        assert!(wheel_fits(b, Arch::Amd64) && !wheel_fits(b, Arch::Arm64));
        assert!(wheel_fits("rich-15.0.0-py3-none-any.whl", Arch::Arm64));
        assert!(wheel_fits(
            "x-1-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
            Arch::Arm64
        ));
        assert!(!wheel_fits(
            "x-1-cp312-cp312-manylinux_2_28_aarch64.whl",
            Arch::Arm64
        ));
        assert!(
            !wheel_fits("x-1-cp311-cp311-manylinux_2_39_aarch64.whl", Arch::Arm64),
            "glibc too new"
        );
        assert!(!wheel_fits(
            "x-1-cp311-cp311-macosx_11_0_arm64.whl",
            Arch::Arm64
        ));
        assert!(!wheel_fits("x-1.tar.gz", Arch::Arm64));
    }

    #[test]
    fn the_lock_has_a_wheel_for_every_package_on_both_platforms() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/pylock.toml");
        let lock = crate::lockfile::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        for arch in ALL {
            assert_eq!(
                missing_wheels(&lock, arch),
                Ok(vec![]),
                "{}",
                arch.platform()
            );
        }
        // bitsandbytes (QLoRA) only where it has a wheel
        let bnb = lock.entries("bitsandbytes");
        assert_eq!(bnb.len(), 1);
        let m = bnb[0].marker.as_deref().unwrap();
        assert_eq!(marker_holds(m, Arch::Amd64.machine()), Ok(true));
        assert_eq!(marker_holds(m, Arch::Arm64.machine()), Ok(false));
    }
}
