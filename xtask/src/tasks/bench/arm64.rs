//! The arm64 rows: the size of the linux/arm64 image (target ≤ 1.6 GB: PyPI's aarch64 torch is
//! a CPU build without CUDA libraries), and how long an emulated build takes next to the native
//! build in the same run (informational: QEMU's cost on an x86 machine).

use super::measure::Bench;
use super::report::{Row, Target};
use crate::engine::{self, cmd, Emulation};
use crate::error::Result;
use crate::platform::{self, Arch};

const ARM_TAG: &str = "lexalign-bench:arm64";
const NATIVE_TAG: &str = "lexalign-bench:native";

pub fn arm64(b: &Bench, quick: bool) -> Result<Vec<Row>> {
    let mut size = Row::new("arm64-image-size", "arm64 image size", "GB");
    size.target = Some(Target::AtMost(1.6));
    let mut build = Row::new("arm64-build", "arm64 image build, no cache", "s");
    build.peer_name = "native build, no cache";
    let native = b.ctx.engine_arch().unwrap_or(Arch::Amd64);
    let emulation = engine::emulation(Arch::Arm64, native);
    if let Emulation::Missing(fix) = &emulation {
        return Ok(vec![
            size.unavailable(format!("not measured: {fix}")),
            build.unavailable(format!("not measured: {fix}")),
        ]);
    }
    let sh = &b.ctx.sh;
    let bytes = |r: &str| -> Option<f64> {
        b.ctx
            .capture(cmd::image_inspect(&b.engine, sh, "{{.Size}}", r))
            .ok()?
            .answer()?
            .parse::<f64>()
            .ok()
    };
    if quick {
        // The arm64 image `ci` builds, when it is there.
        let tag = platform::default_tag(b.ctx.image(), Arch::Arm64, native);
        match bytes(&tag) {
            Some(n) => {
                size.samples.push(n / 1e9);
                size.note = format!("{tag} as built by `cargo xtask ci`");
            }
            None => size = size.unavailable(format!("not measured with --quick: no {tag}")),
        }
        return Ok(vec![
            size,
            build.unavailable("not measured: skipped with --quick"),
        ]);
    }
    b.ctx.info(format!(
        "bench: arm64 build ({}) and native build, both without the layer cache",
        emulation.describe()
    ));
    let (t_arm, _) = b.time_ok(
        b.xtask(&[
            "--image",
            ARM_TAG,
            "-q",
            "image",
            "--no-cache",
            "--platform",
            "linux/arm64",
        ]),
        "arm64 image build",
    )?;
    let (t_native, _) = b.time_ok(
        b.xtask(&["--image", NATIVE_TAG, "-q", "image", "--no-cache"]),
        "native image build",
    )?;
    build.samples.push(t_arm);
    build.peer.push(t_native);
    build.note = format!(
        "{} on a {} engine; `image --no-cache` with the base present, PyPI downloads included (the uv cache mount is kept)",
        emulation.describe(),
        native.platform()
    );
    if let Some(n) = bytes(ARM_TAG) {
        size.samples.push(n / 1e9);
        size.note =
            "torch 2.6.0's aarch64 wheel is a CPU build: no CUDA libraries, no triton".into();
    }
    for tag in [ARM_TAG, NATIVE_TAG] {
        let _ = b.ctx.capture(cmd::rmi(&b.engine, sh, tag));
    }
    Ok(vec![size, build])
}
