//! A stand-in container engine for tests that need no Docker: it records its argv and answers
//! like a docker client would, failing on demand. Controlled by environment variables:
//!   FAKE_ENGINE_LOG      append each argv (one line, tab-separated) to this file
//!   FAKE_CLIENT_VERSION  `version --format {{.Client.Version}}` (default 20.10.24+dfsg1)
//!   FAKE_BUILDX=1        `buildx version` succeeds (default: fails)
//!   FAKE_DAEMON=0        the daemon is unreachable
//!   FAKE_PRESENT         comma-separated images `image inspect` finds
//!   FAKE_PULL=1          `pull` succeeds
//!   FAKE_FAIL=SUB        subcommand SUB prints an engine-like error and exits 1 (`*`: every call)
//!   FAKE_RUN_EXIT=N      `run` exits N
//!   FAKE_RUN_SLEEP_S=N   `run` takes N seconds (so a test can interrupt a task mid-way)
//!   FAKE_ARCH            the engine's Architecture in `info` (default x86_64)
//!   FAKE_IMAGE_ARCH      every present image's Architecture (default amd64)
//!   FAKE_LOCK_LABEL      every present image's `dev.lexalign.lock-sha256` label
//!   FAKE_PS, FAKE_IMAGES, FAKE_VOLUMES   what `ps`, `images` and `volume ls` list (lines
//!                        separated by `;`)

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(log) = std::env::var("FAKE_ENGINE_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{}", args.join("\t"));
        }
    }
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let sub = args.first().map(String::as_str).unwrap_or("");
    if env("FAKE_FAIL") == sub || env("FAKE_FAIL") == "*" {
        println!("#5 [stage-0 3/7] RUN something");
        eprintln!("ERROR: failed to solve: process \"/bin/sh -c false\" did not complete successfully: exit code: 1");
        std::process::exit(1);
    }
    let daemon_down = env("FAKE_DAEMON") == "0";
    let down = || {
        eprintln!("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
        std::process::exit(1);
    };
    match sub {
        "version" => {
            let format = args
                .iter()
                .skip_while(|a| *a != "--format")
                .nth(1)
                .cloned()
                .unwrap_or_default();
            if format.contains("Client") {
                let v = env("FAKE_CLIENT_VERSION");
                println!("{}", if v.is_empty() { "20.10.24+dfsg1" } else { &v });
            } else if daemon_down {
                down();
            } else {
                println!("20.10.24+dfsg1");
            }
        }
        "buildx" => {
            if env("FAKE_BUILDX") == "1" {
                println!("github.com/docker/buildx v0.12.0");
            } else {
                eprintln!("docker: 'buildx' is not a docker command.");
                std::process::exit(1);
            }
        }
        _ if daemon_down => down(),
        "info" if args.iter().any(|a| a.contains("Architecture")) => {
            let a = env("FAKE_ARCH");
            println!("{}", if a.is_empty() { "x86_64" } else { &a });
        }
        "image" if args.get(1).map(String::as_str) == Some("inspect") => {
            let wanted = args.last().cloned().unwrap_or_default();
            if env("FAKE_PRESENT").split(',').any(|p| p == wanted) {
                if args.iter().any(|a| a == "{{.Architecture}}") {
                    let a = env("FAKE_IMAGE_ARCH");
                    println!("{}", if a.is_empty() { "amd64" } else { &a });
                } else if args.iter().any(|a| a.contains("dev.lexalign.lock-sha256"))
                    && !env("FAKE_LOCK_LABEL").is_empty()
                {
                    println!("{}", env("FAKE_LOCK_LABEL"));
                } else {
                    println!("sha256:fake 123");
                }
            } else {
                eprintln!("Error: No such image: {wanted}");
                std::process::exit(1);
            }
        }
        "ps" => {
            for l in env("FAKE_PS").split(';').filter(|l| !l.is_empty()) {
                println!("{l}");
            }
        }
        "images" => {
            for l in env("FAKE_IMAGES").split(';').filter(|l| !l.is_empty()) {
                println!("{l}");
            }
        }
        "volume" if args.get(1).map(String::as_str) == Some("ls") => {
            for l in env("FAKE_VOLUMES").split(';').filter(|l| !l.is_empty()) {
                println!("{l}");
            }
        }
        "pull" if env("FAKE_PULL") != "1" => {
            eprintln!("Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host");
            std::process::exit(1);
        }
        "run" => {
            if let Ok(secs) = env("FAKE_RUN_SLEEP_S").parse::<f64>() {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            }
            let code: i32 = env("FAKE_RUN_EXIT").parse().unwrap_or(0);
            std::process::exit(code);
        }
        _ => {}
    }
}
