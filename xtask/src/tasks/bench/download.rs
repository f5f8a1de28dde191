//! The download rows: the CLI against curl on one file (loopback, and a 100 MB/s link), and
//! against `hf download` on a sharded repo and on one large file, every connection throttled
//! (the large file is where ranged connections count: 8 against `hf download`'s one).

use super::measure::{numbers, Bench};
use super::report::{fmt, median};
use super::report::{Row, Target};
use crate::error::Result;

/// The download CLI against `hf download` on the same throttled Hub imitation (MB/s).
pub fn hf_peer(b: &Bench) -> Result<Vec<Row>> {
    b.ctx.info(
        "bench: download CLI vs `hf download`, every connection throttled (in the container)",
    );
    let mut sharded = Row::new(
        "download-sharded",
        "download a sharded repo (8 × 25 MB)",
        "MB/s",
    );
    sharded.target = Some(Target::RatioAtLeast(1.0));
    sharded.peer_name = "hf download";
    let mut large = Row::new("download-large", "download one 200 MB file", "MB/s");
    large.target = Some(Target::RatioAtLeast(3.0));
    large.peer_name = "hf download";
    let runs = b.runs.min(3).to_string();
    match b.dev_json(&["python", "benchmarks/hf_peer_bench.py", "--runs", &runs]) {
        Ok(v) => {
            let mb = |k: &str| v[k].as_f64().unwrap_or(0.0);
            let total = mb("shards") * mb("shard_mb");
            let rate =
                |secs: Vec<f64>, size: f64| secs.iter().map(|s| size / s).collect::<Vec<_>>();
            sharded.samples = rate(numbers(&v, "sharded_cli_s"), total);
            sharded.peer = rate(numbers(&v, "sharded_hf_s"), total);
            large.samples = rate(numbers(&v, "large_cli_s"), mb("large_mb"));
            large.peer = rate(numbers(&v, "large_hf_s"), mb("large_mb"));
            let note = |rate: f64| {
                format!("the local Hub imitation throttling each connection to {rate} MB/s (a CDN connection); the whole command, start-up to manifest; `hf download --max-workers 8`, Xet off")
            };
            sharded.note = format!("{}; max_workers 8 (the default)", note(mb("rate_mb_s")));
            large.note = format!(
                "{}; the CLI's defaults (max_connections_per_file 8, part_size_mb 16), `hf download` one connection per file",
                note(mb("large_rate_mb_s"))
            );
        }
        Err(e) => {
            sharded = sharded.unavailable(format!("not measured: {e}"));
            large = large.unavailable(format!("not measured: {e}"));
        }
    }
    Ok(vec![sharded, large])
}

/// One throughput row against curl: (id, name, --rate-mb-s, --size-mb, ratio target, the
/// samples: the whole run, or its per-byte rate — the run less its fixed part).
const THROUGHPUT: [(&str, &str, &str, &str, f64, &str); 3] = [
    (
        "download",
        "download CLI throughput (loopback)",
        "0",
        "200",
        0.6,
        "cli_mb_s",
    ),
    (
        "download-1g",
        "download CLI per-byte rate, 1 GB (loopback)",
        "0",
        "1000",
        0.8,
        "cli_per_byte_mb_s",
    ),
    (
        "download-link",
        "download CLI throughput (100 MB/s link)",
        "100",
        "200",
        0.8,
        "cli_mb_s",
    ),
];

pub fn download(b: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (id, name, rate, size_mb, ratio, samples) in THROUGHPUT {
        // the 200 MB loopback run also times the fixed cost (a 2 KB repo) against `hf download`
        let want_fixed = id == "download" && b.wanted("download-fixed");
        if !b.wanted(id) && !want_fixed {
            continue;
        }
        let mut fixed_row = Row::new("download-fixed", "download CLI on a 2 KB repo", "s");
        fixed_row.target = Some(Target::AtMost(0.18));
        fixed_row.peer_name = "hf download";
        b.ctx
            .info(format!("bench: {name} (CLI vs curl, in the container)"));
        let mut row = Row::new(id, name, "MB/s");
        row.target = Some(Target::RatioAtLeast(ratio));
        row.peer_name = "curl";
        let n = b.runs.min(3).to_string();
        match b.dev_json(&[
            "python",
            "benchmarks/download_bench.py",
            "--runs",
            &n,
            "--rate-mb-s",
            rate,
            "--size-mb",
            size_mb,
        ]) {
            Ok(v) => {
                row.samples = numbers(&v, samples);
                row.peer = numbers(&v, "curl_mb_s");
                fixed_row.samples = numbers(&v, "fixed_s");
                fixed_row.peer = numbers(&v, "hf_fixed_s");
                fixed_row.note = "the whole download CLI run (start-up, config, API call, one 2 KB file, manifest) from the local Hub imitation; peer: `hf download` of the same repo, same run".into();
                row.note = throughput_note(&v, rate);
                if samples != "cli_mb_s" {
                    row.note = format!(
                        "per byte: each run's time less its fixed part; {}",
                        row.note
                    );
                }
            }
            Err(e) => {
                fixed_row = fixed_row.unavailable(format!("not measured: {e}"));
                row = row.unavailable(format!("not measured: {e}"));
            }
        }
        if b.wanted(id) {
            rows.push(row);
        }
        if want_fixed {
            rows.push(fixed_row);
        }
    }
    Ok(rows)
}

/// What a throughput row's figure is made of: the whole run, its fixed part (the same run on
/// a 2 KB repo) and the rate of the bytes once that is paid.
fn throughput_note(v: &serde_json::Value, rate: &str) -> String {
    let help = median(&numbers(v, "help_s"));
    let fixed = median(&numbers(v, "fixed_s"));
    let size = v["size_mb"].as_f64().unwrap_or(0.0);
    let whole = median(&numbers(v, "cli_mb_s"));
    let transfer = match (whole, fixed) {
        (Some(r), Some(f)) if r > 0.0 && size / r > f => Some(size / (size / r - f)),
        _ => None,
    };
    format!(
        "{size:.0} MB from the local Hub imitation{}; the whole CLI run (start-up, API call, transfer, sha256) against curl's receive-and-write; of it {} s fixed (the same run for a 2 KB repo), the rest at {} MB/s; download.py --help {} s",
        if rate == "0" { "" } else { " throttled to 100 MB/s" },
        fmt(fixed),
        fmt(transfer),
        fmt(help)
    )
}
