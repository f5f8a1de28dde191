//! Which base image a build uses, and building the Debian one when it is missing. Per
//! platform: a local image counts only when its Architecture is the target's, `python:3.11-slim`
//! is pulled only for the engine's own platform (a pull for another would retag the native
//! one), and the Debian-built base has a tag per foreign platform.

use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::error::{fail, Result};
use crate::platform::{self, Arch};
use crate::policy::{self, SLIM_BASE};
use std::time::Duration;

/// What the base-selection logic can ask about the machine.
pub trait BaseProbe {
    /// The Architecture of a local image (None: not present, or unknown).
    fn arch_of(&mut self, reference: &str) -> Option<Arch>;
    fn pull(&mut self, reference: &str) -> bool;
    fn can_build_debian_base(&mut self) -> bool;
}

#[derive(Debug, PartialEq, Eq)]
pub struct BaseChoice {
    pub reference: String,
    pub build_first: bool,
    pub why: String,
}

/// Choose the base for a build of `arch` on an engine whose own architecture is `native`.
pub fn choose_base(
    requested: &str,
    arch: Arch,
    native: Arch,
    probe: &mut dyn BaseProbe,
) -> Result<BaseChoice, String> {
    let debian = platform::debian_base(arch, native);
    let plat = arch.platform();
    let here = |probe: &mut dyn BaseProbe, r: &str| probe.arch_of(r) == Some(arch);
    if requested != "auto" {
        if let Some(other) = probe.arch_of(requested).filter(|a| *a != arch) {
            return Err(format!(
                "--base-image {requested} is {}, not {plat}; pass a base for {plat} (or `auto`)",
                other.platform()
            ));
        }
        if requested == debian && !here(probe, &debian) {
            if probe.can_build_debian_base() {
                return Ok(BaseChoice {
                    reference: debian,
                    build_first: true,
                    why: "requested with --base-image and not present: building it with mmdebstrap"
                        .into(),
                });
            }
            return Err(format!(
                "base image {debian} is not present and mmdebstrap is missing; install it \
                 (`apt-get install mmdebstrap`) or run `cargo xtask base-image --platform {plat}` on a Debian/Ubuntu host"
            ));
        }
        return Ok(BaseChoice {
            reference: requested.into(),
            build_first: false,
            why: "requested with --base-image".into(),
        });
    }
    if here(probe, SLIM_BASE) {
        return Ok(BaseChoice {
            reference: SLIM_BASE.into(),
            build_first: false,
            why: format!("{SLIM_BASE} is present locally ({plat})"),
        });
    }
    if arch == native && probe.arch_of(SLIM_BASE).is_none() && probe.pull(SLIM_BASE) {
        return Ok(BaseChoice {
            reference: SLIM_BASE.into(),
            build_first: false,
            why: format!("{SLIM_BASE} was pulled from its registry"),
        });
    }
    let slim_why = if arch == native {
        format!("{SLIM_BASE} is neither present nor pullable")
    } else {
        format!("no local {SLIM_BASE} for {plat} (pulling one would retag the native image)")
    };
    if here(probe, &debian) {
        return Ok(BaseChoice {
            reference: debian.clone(),
            build_first: false,
            why: format!("{slim_why}; {debian} is present locally"),
        });
    }
    if probe.can_build_debian_base() {
        return Ok(BaseChoice {
            reference: debian.clone(),
            build_first: true,
            why: format!("{slim_why}; building {debian} from Debian packages"),
        });
    }
    Err(format!(
        "no base image for {plat}: {slim_why}, {debian} is missing and mmdebstrap is not installed; \
         install mmdebstrap (`apt-get install mmdebstrap`) and run `cargo xtask base-image --platform {plat}`, or pass --base-image REF"
    ))
}

struct EngineProbe<'a> {
    ctx: &'a Ctx,
}

impl BaseProbe for EngineProbe<'_> {
    fn arch_of(&mut self, reference: &str) -> Option<Arch> {
        Arch::from_engine(&self.ctx.image_arch(reference)?)
    }
    fn pull(&mut self, reference: &str) -> bool {
        let Ok(e) = self.ctx.engine() else {
            return false;
        };
        if !self.ctx.dry_run() {
            self.ctx.info(format!("base: trying to pull {reference} …"));
        }
        self.ctx
            .exec
            .within(cmd::pull(e, &self.ctx.sh, reference), pull_timeout())
            .is_some_and(|c| c == 0)
    }
    fn can_build_debian_base(&mut self) -> bool {
        which::which("mmdebstrap").is_ok() || self.ctx.dry_run()
    }
}

fn pull_timeout() -> Duration {
    let s = std::env::var("LEXALIGN_PULL_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(policy::PULL_TIMEOUT_S);
    Duration::from_secs(s)
}

/// Choose (and if needed build) the base for a build of `arch`.
pub fn resolve_base(ctx: &Ctx, requested: &str, arch: Arch, native: Arch) -> Result<String> {
    let choice = choose_base(requested, arch, native, &mut EngineProbe { ctx }).map_err(fail)?;
    ctx.info(format!("base: {} ({})", choice.reference, choice.why));
    if choice.build_first {
        let platform = (arch != native).then_some(arch);
        crate::build::debian::build(ctx, &choice.reference, policy::DEBIAN_SUITE, None, platform)?;
    }
    Ok(choice.reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Arch::{Amd64, Arm64};
    use crate::policy::DEBIAN_BASE;

    struct Fake {
        present: Vec<(&'static str, Arch)>,
        pullable: bool,
        mmdebstrap: bool,
        pulled: Vec<String>,
    }
    impl BaseProbe for Fake {
        fn arch_of(&mut self, r: &str) -> Option<Arch> {
            self.present.iter().find(|(n, _)| *n == r).map(|(_, a)| *a)
        }
        fn pull(&mut self, r: &str) -> bool {
            self.pulled.push(r.into());
            self.pullable
        }
        fn can_build_debian_base(&mut self) -> bool {
            self.mmdebstrap
        }
    }
    fn fake(present: Vec<(&'static str, Arch)>, pullable: bool, mmdebstrap: bool) -> Fake {
        Fake {
            present,
            pullable,
            mmdebstrap,
            pulled: vec![],
        }
    }

    #[test]
    fn base_prefers_local_slim_without_pulling() {
        let mut f = fake(vec![(SLIM_BASE, Amd64)], true, true);
        let c = choose_base("auto", Amd64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, SLIM_BASE);
        assert!(!c.build_first && f.pulled.is_empty());
    }

    #[test]
    fn base_pulls_slim_when_possible() {
        let mut f = fake(vec![], true, true);
        let c = choose_base("auto", Amd64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, SLIM_BASE);
        assert_eq!(f.pulled, vec![SLIM_BASE.to_string()]);
        assert!(c.why.contains("pulled"));
    }

    #[test]
    fn base_falls_back_to_debian() {
        let mut f = fake(vec![(DEBIAN_BASE, Amd64)], false, false);
        let c = choose_base("auto", Amd64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, DEBIAN_BASE);
        assert!(!c.build_first);
        let mut f = fake(vec![], false, true);
        let c = choose_base("auto", Amd64, Amd64, &mut f).unwrap();
        assert!(c.build_first && c.why.contains("neither present nor pullable"));
        let mut f = fake(vec![], false, false);
        let e = choose_base("auto", Amd64, Amd64, &mut f).unwrap_err();
        assert!(e.contains("apt-get install mmdebstrap"));
    }

    #[test]
    fn explicit_base_is_used_as_is() {
        let mut f = fake(vec![], false, false);
        let c = choose_base("debian:bookworm", Amd64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, "debian:bookworm");
        assert!(f.pulled.is_empty());
        let mut f = fake(vec![], false, true);
        assert!(
            choose_base(DEBIAN_BASE, Amd64, Amd64, &mut f)
                .unwrap()
                .build_first
        );
    }

    #[test]
    fn a_foreign_platform_gets_its_own_base_and_never_pulls() {
        // an amd64 python:3.11-slim and the amd64 Debian base do not count for arm64
        let mut f = fake(vec![(SLIM_BASE, Amd64), (DEBIAN_BASE, Amd64)], true, true);
        let c = choose_base("auto", Arm64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, format!("{DEBIAN_BASE}-arm64"));
        assert!(c.build_first && f.pulled.is_empty(), "{c:?}");
        let arm = "lexalign/python:3.11-bookworm-arm64";
        let mut f = fake(vec![(arm, Arm64)], true, false);
        let c = choose_base("auto", Arm64, Amd64, &mut f).unwrap();
        assert_eq!((c.reference.as_str(), c.build_first), (arm, false));
        // an arm64 python:3.11-slim present locally is used for arm64, and not for amd64
        let mut f = fake(vec![(SLIM_BASE, Arm64)], true, true);
        assert_eq!(
            choose_base("auto", Arm64, Amd64, &mut f).unwrap().reference,
            SLIM_BASE
        );
        let mut f = fake(vec![(SLIM_BASE, Arm64)], true, true);
        let c = choose_base("auto", Amd64, Amd64, &mut f).unwrap();
        assert_eq!(c.reference, DEBIAN_BASE);
        assert!(f.pulled.is_empty(), "pulling would replace the arm64 tag");
        // an explicit base of the wrong architecture is refused
        let mut f = fake(vec![(DEBIAN_BASE, Amd64)], false, false);
        let e = choose_base(DEBIAN_BASE, Arm64, Amd64, &mut f).unwrap_err();
        assert!(e.contains("is linux/amd64, not linux/arm64"), "{e}");
    }
}
