//! Which base image a build uses, and building the Debian one when it is missing.

use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::error::{fail, Result};
use crate::policy::{self, DEBIAN_BASE, SLIM_BASE};
use std::time::Duration;

/// What the base-selection logic can ask about the machine.
pub trait BaseProbe {
    fn present(&mut self, reference: &str) -> bool;
    fn pull(&mut self, reference: &str) -> bool;
    fn can_build_debian_base(&mut self) -> bool;
}

/// The chosen base: the reference, whether it must be built first, and why (printed).
#[derive(Debug, PartialEq, Eq)]
pub struct BaseChoice {
    pub reference: String,
    pub build_first: bool,
    pub why: String,
}

/// Base selection (pure over the probe). `auto`: python:3.11-slim if present or pullable,
/// else the Debian-built base (built on the spot when missing and possible).
pub fn choose_base(requested: &str, probe: &mut dyn BaseProbe) -> Result<BaseChoice, String> {
    let debian = DEBIAN_BASE;
    if requested != "auto" {
        if requested == debian && !probe.present(debian) {
            if probe.can_build_debian_base() {
                return Ok(BaseChoice {
                    reference: debian.into(),
                    build_first: true,
                    why: "requested with --base-image and not present: building it with mmdebstrap"
                        .into(),
                });
            }
            return Err(format!(
                "base image {debian} is not present and mmdebstrap is missing; install it \
                 (`apt-get install mmdebstrap`) or run `cargo xtask base-image` on a Debian/Ubuntu host"
            ));
        }
        return Ok(BaseChoice {
            reference: requested.into(),
            build_first: false,
            why: "requested with --base-image".into(),
        });
    }
    if probe.present(SLIM_BASE) {
        return Ok(BaseChoice {
            reference: SLIM_BASE.into(),
            build_first: false,
            why: format!("{SLIM_BASE} is present locally"),
        });
    }
    if probe.pull(SLIM_BASE) {
        return Ok(BaseChoice {
            reference: SLIM_BASE.into(),
            build_first: false,
            why: format!("{SLIM_BASE} was pulled from its registry"),
        });
    }
    if probe.present(debian) {
        return Ok(BaseChoice {
            reference: debian.into(),
            build_first: false,
            why: format!(
                "{SLIM_BASE} is neither present nor pullable; {debian} is present locally"
            ),
        });
    }
    if probe.can_build_debian_base() {
        return Ok(BaseChoice {
            reference: debian.into(),
            build_first: true,
            why: format!(
                "{SLIM_BASE} is neither present nor pullable; building {debian} from Debian packages"
            ),
        });
    }
    Err(format!(
        "no base image: {SLIM_BASE} cannot be pulled, {debian} is missing and mmdebstrap is not installed; \
         install mmdebstrap (`apt-get install mmdebstrap`) and run `cargo xtask base-image`, or pass --base-image REF"
    ))
}

struct EngineProbe<'a> {
    ctx: &'a Ctx,
}

impl BaseProbe for EngineProbe<'_> {
    fn present(&mut self, reference: &str) -> bool {
        self.ctx.image_id(reference).is_some()
    }
    fn pull(&mut self, reference: &str) -> bool {
        let Ok(e) = self.ctx.engine() else {
            return false;
        };
        if !self.ctx.dry_run() {
            self.ctx.info(format!("base: trying to pull {reference} …"));
        }
        // A dry run prints the pull and takes the no-pull path.
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

/// Select the base (and build the Debian one when needed); returns its reference.
pub fn resolve_base(ctx: &Ctx, requested: &str) -> Result<String> {
    let choice = choose_base(requested, &mut EngineProbe { ctx }).map_err(fail)?;
    ctx.info(format!("base: {} ({})", choice.reference, choice.why));
    if choice.build_first {
        crate::tasks::base_image::build(ctx, &choice.reference, policy::DEBIAN_SUITE, None)?;
    }
    Ok(choice.reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        present: Vec<&'static str>,
        pullable: bool,
        mmdebstrap: bool,
        pulled: Vec<String>,
    }
    impl BaseProbe for Fake {
        fn present(&mut self, r: &str) -> bool {
            self.present.contains(&r)
        }
        fn pull(&mut self, r: &str) -> bool {
            self.pulled.push(r.into());
            self.pullable
        }
        fn can_build_debian_base(&mut self) -> bool {
            self.mmdebstrap
        }
    }
    fn fake(present: Vec<&'static str>, pullable: bool, mmdebstrap: bool) -> Fake {
        Fake {
            present,
            pullable,
            mmdebstrap,
            pulled: vec![],
        }
    }

    #[test]
    fn base_prefers_local_slim_without_pulling() {
        let mut f = fake(vec![SLIM_BASE], true, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, SLIM_BASE);
        assert!(!c.build_first && f.pulled.is_empty());
    }

    #[test]
    fn base_pulls_slim_when_possible() {
        let mut f = fake(vec![], true, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, SLIM_BASE);
        assert_eq!(f.pulled, vec![SLIM_BASE.to_string()]);
        assert!(c.why.contains("pulled"));
    }

    #[test]
    fn base_falls_back_to_debian() {
        let mut f = fake(vec![DEBIAN_BASE], false, false);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, DEBIAN_BASE);
        assert!(!c.build_first);
        let mut f = fake(vec![], false, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert!(c.build_first && c.why.contains("neither present nor pullable"));
        let mut f = fake(vec![], false, false);
        let e = choose_base("auto", &mut f).unwrap_err();
        assert!(e.contains("apt-get install mmdebstrap"));
    }

    #[test]
    fn explicit_base_is_used_as_is() {
        let mut f = fake(vec![], false, false);
        let c = choose_base("debian:bookworm", &mut f).unwrap();
        assert_eq!(c.reference, "debian:bookworm");
        assert!(f.pulled.is_empty());
        let mut f = fake(vec![], false, true);
        assert!(choose_base(DEBIAN_BASE, &mut f).unwrap().build_first);
    }
}
