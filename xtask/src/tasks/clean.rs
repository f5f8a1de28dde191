//! `cargo xtask clean [--volumes] [--force]`: remove what the xtask itself created.
//!
//! - containers: only those carrying the run-time mark (`dev.lexalign.run=<project>`), which the
//!   xtask sets when it starts a container and no image carries (containers inherit their
//!   image's labels, so the project label alone proves nothing); running ones only with --force;
//! - images: those labelled `dev.lexalign.project=<project>`, removed by reference without -f,
//!   and never one that has more than one tag (someone else named it too);
//! - volumes (the HF cache: every downloaded model): only with --volumes.
//!
//! `--dry-run` lists exactly what would go.

use crate::cli::CleanArgs;
use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::error::{fail, Result};
use crate::policy;

/// A container as listed: id, name, running?, and whether its image carries the run mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
}

/// An image as listed: id and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
}

/// What an action is about: each kind has its own removal command (no fallback arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Volume,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
        })
    }
}

/// What to do with one object (pure decisions, printed as they are carried out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Remove {
        kind: Kind,
        reference: String,
        show: String,
    },
    Keep {
        kind: Kind,
        show: String,
        why: String,
    },
}

/// Parse `ID NAME STATE` lines of `ps` (pure).
pub fn parse_containers(out: &str) -> Vec<Container> {
    out.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some(Container {
                id: p.next()?.to_string(),
                name: p.next()?.to_string(),
                running: p.next() == Some("running"),
            })
        })
        .collect()
}

/// Parse `ID REPO:TAG` lines of `images`, grouping the tags of one id (pure).
pub fn parse_images(out: &str) -> Vec<Image> {
    let mut images: Vec<Image> = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let (id, tag) = line.split_once(' ').unwrap_or((line, ""));
        let tag = (!tag.is_empty() && tag != "<none>:<none>").then(|| tag.to_string());
        match images.iter_mut().find(|i| i.id == id) {
            Some(i) => i.tags.extend(tag),
            None => images.push(Image {
                id: id.to_string(),
                tags: tag.into_iter().collect(),
            }),
        }
    }
    images
}

/// The plan (pure): which objects go and which stay, and why.
pub fn plan(
    containers: &[Container],
    images: &[Image],
    volumes: &[String],
    args: &CleanArgs,
) -> Vec<Action> {
    let mut out = Vec::new();
    for c in containers {
        let show = format!("{} ({})", c.name, c.id);
        if c.running && !args.force {
            out.push(Action::Keep {
                kind: Kind::Container,
                show,
                why: "it is running; stop it or pass --force".into(),
            });
        } else {
            out.push(Action::Remove {
                kind: Kind::Container,
                reference: c.id.clone(),
                show,
            });
        }
    }
    for i in images {
        match i.tags.as_slice() {
            [] => out.push(Action::Remove {
                kind: Kind::Image,
                reference: i.id.clone(),
                show: format!("<untagged> ({})", i.id),
            }),
            [tag] => out.push(Action::Remove {
                kind: Kind::Image,
                reference: tag.clone(),
                show: format!("{tag} ({})", i.id),
            }),
            tags => out.push(Action::Keep {
                kind: Kind::Image,
                show: format!("{} ({})", tags.join(", "), i.id),
                why: "it has more than one tag; remove the extra tags first (`docker rmi TAG`)"
                    .into(),
            }),
        }
    }
    for v in volumes {
        if args.volumes {
            out.push(Action::Remove {
                kind: Kind::Volume,
                reference: v.clone(),
                show: v.clone(),
            });
        } else {
            out.push(Action::Keep {
                kind: Kind::Volume,
                show: v.clone(),
                why: "volumes hold downloaded models; pass --volumes to remove them".into(),
            });
        }
    }
    out
}

pub fn run(ctx: &Ctx, args: &CleanArgs) -> Result<()> {
    let e = ctx.engine_ready()?;
    let containers = marked_containers(ctx, e)?;
    let (images, volumes) = labelled_images_and_volumes(ctx, e)?;
    let actions = plan(&containers, &images, &volumes, args);
    if actions.is_empty() {
        println!("nothing to remove (label {})", ctx.project_label());
        return Ok(());
    }
    apply(ctx, e, actions, args.force)
}

/// The containers carrying this project's run-time mark (and not inheriting it from an image).
fn marked_containers(ctx: &Ctx, e: &crate::engine::Engine) -> Result<Vec<Container>> {
    let sh = &ctx.sh;
    let mark = format!("label={}={}", policy::RUN_LABEL, ctx.project);
    let listed = ctx.capture(cmd::ps(e, sh, &[mark], "{{.ID}} {{.Names}} {{.State}}"))?;
    let mut containers = parse_containers(&listed.stdout);
    // Belt and braces: a container whose image carries the mark was not marked by us.
    if !containers.is_empty() {
        let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
        let images = ctx.capture(cmd::container_inspect(e, sh, "{{.Image}}", &ids))?;
        let inherited: Vec<bool> = images
            .stdout
            .lines()
            .map(|img| {
                ctx.image_label(img.trim(), policy::RUN_LABEL)
                    .is_some_and(|v| !v.is_empty())
            })
            .collect();
        if inherited.len() == containers.len() {
            let mut keep = inherited.iter().map(|i| !i);
            containers.retain(|_| keep.next().unwrap_or(true));
        }
    }
    Ok(containers)
}

/// The images and volumes labelled with this project (and the HF cache volume).
fn labelled_images_and_volumes(
    ctx: &Ctx,
    e: &crate::engine::Engine,
) -> Result<(Vec<Image>, Vec<String>)> {
    let sh = &ctx.sh;
    let label = format!("label={}", ctx.project_label());
    let images = parse_images(
        &ctx.capture(cmd::images(
            e,
            sh,
            std::slice::from_ref(&label),
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ))?
        .stdout,
    );
    let mut volumes: Vec<String> = ctx
        .capture(cmd::volume_ls(e, sh, &label))?
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    // The HF cache volume may predate its label (created implicitly by a run).
    let hf = ctx.hf_volume();
    if !volumes.contains(&hf) && ctx.capture(cmd::volume_inspect(e, sh, &hf))?.ok() {
        volumes.push(hf);
    }
    Ok((images, volumes))
}

/// Remove (or, in a dry run, list) what the plan says; keep and say why for the rest.
fn apply(ctx: &Ctx, e: &crate::engine::Engine, actions: Vec<Action>, force: bool) -> Result<()> {
    let sh = &ctx.sh;
    let verb = if ctx.dry_run() {
        "would remove"
    } else {
        "removed"
    };
    let mut failures = 0;
    for a in actions {
        match a {
            Action::Keep { kind, show, why } => println!("kept {kind} {show}: {why}"),
            Action::Remove {
                kind,
                reference,
                show,
            } => {
                let p = match kind {
                    Kind::Container => cmd::rm(e, sh, &reference, force),
                    Kind::Image => cmd::rmi(e, sh, &reference),
                    Kind::Volume => cmd::volume_rm(e, sh, &reference),
                };
                let out = ctx.capture(p)?;
                if out.planned || out.ok() {
                    println!("{verb} {kind} {show}");
                } else {
                    failures += 1;
                    eprintln!("could not remove {kind} {show}: {}", out.first_error_line());
                }
            }
        }
    }
    if failures > 0 {
        return Err(fail(format!(
            "clean: {failures} object(s) could not be removed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(volumes: bool, force: bool) -> CleanArgs {
        CleanArgs { volumes, force }
    }

    #[test]
    fn listings_parse() {
        let c = parse_containers("abc lexalign-run-1 running\ndef lexalign-smoke-2 exited\n");
        assert!(c[0].running && !c[1].running);
        let i = parse_images(
            "abc lexalign-dev:latest\nabc lexalign-dev:old\ndef other:1\nghi <none>:<none>\n",
        );
        assert_eq!(i.len(), 3);
        assert_eq!(i[0].tags, ["lexalign-dev:latest", "lexalign-dev:old"]);
        assert!(i[2].tags.is_empty());
    }

    #[test]
    fn running_containers_need_force_and_volumes_need_volumes() {
        let c = parse_containers("abc lexalign-run-1 running\n");
        let v = vec!["lexalign-hf-cache".to_string()];
        let p = plan(&c, &[], &v, &args(false, false));
        assert!(matches!(&p[0], Action::Keep { why, .. } if why.contains("--force")));
        assert!(matches!(&p[1], Action::Keep { why, .. } if why.contains("--volumes")));
        let p = plan(&c, &[], &v, &args(true, true));
        assert!(matches!(&p[0], Action::Remove { reference, .. } if reference == "abc"));
        assert!(matches!(
            &p[1],
            Action::Remove {
                kind: Kind::Volume,
                ..
            }
        ));
    }

    #[test]
    fn images_with_another_tag_stay_and_others_go_by_reference() {
        let i = parse_images("abc lexalign-dev:latest\nabc mine:keep\ndef lexalign-e2e:x\n");
        let p = plan(&[], &i, &[], &args(false, false));
        assert!(matches!(&p[0], Action::Keep { why, .. } if why.contains("more than one tag")));
        assert!(matches!(&p[1], Action::Remove { reference, .. } if reference == "lexalign-e2e:x"));
    }
}
