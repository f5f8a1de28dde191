//! Bench results: rows, verdicts against targets, and the reports (table on stdout,
//! results.json, docs/benchmarks.md and its SVG chart). Pure.

/// How a row is judged.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// median (in the row's unit) at most this
    AtMost(f64),
    /// ratio at most this
    RatioAtMost(f64),
    /// ratio at least this
    RatioAtLeast(f64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    /// The peer/floor samples, for ratio rows.
    pub peer: Vec<f64>,
    pub peer_name: &'static str,
    pub target: Option<Target>,
    pub note: String,
    pub available: bool,
    /// Include in the SVG chart (rebuild and start-up rows, seconds).
    pub chart: bool,
}

impl Row {
    pub fn new(id: &'static str, name: &'static str, unit: &'static str) -> Row {
        Row {
            id,
            name,
            unit,
            samples: vec![],
            peer: vec![],
            peer_name: "",
            target: None,
            note: String::new(),
            available: true,
            chart: false,
        }
    }
    /// A row that could not be measured here: `why` says what to do about it.
    pub fn unavailable(mut self, why: impl Into<String>) -> Row {
        self.available = false;
        self.note = why.into();
        self
    }
    pub fn median(&self) -> Option<f64> {
        median(&self.samples)
    }
    pub fn ratio(&self) -> Option<f64> {
        Some(self.median()? / median(&self.peer)?)
    }
    /// None: no target (or not available).
    pub fn pass(&self) -> Option<bool> {
        if !self.available {
            return None;
        }
        match self.target? {
            Target::AtMost(v) => Some(self.median()? <= v),
            Target::RatioAtMost(v) => Some(self.ratio()? <= v),
            Target::RatioAtLeast(v) => Some(self.ratio()? >= v),
        }
    }
    pub fn target_text(&self) -> String {
        match self.target {
            Some(Target::AtMost(v)) => format!("≤ {v} {}", self.unit),
            Some(Target::RatioAtMost(v)) => format!("ratio ≤ {v}"),
            Some(Target::RatioAtLeast(v)) => format!("ratio ≥ {v}"),
            None => "-".into(),
        }
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

pub fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

/// results.json (serde_json).
pub fn results_json(rows: &[Row], meta: &[(&str, String)]) -> String {
    use serde_json::{json, Map, Value};
    let mut root = Map::new();
    for (k, v) in meta {
        root.insert(k.to_string(), Value::String(v.clone()));
    }
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "unit": r.unit,
                "available": r.available,
                "median": finite(r.median()),
                "min": finite(r.samples.iter().cloned().reduce(f64::min)),
                "max": finite(r.samples.iter().cloned().reduce(f64::max)),
                "runs": r.samples.len(),
                "samples": r.samples,
                "peer": r.peer_name,
                "peer_samples": r.peer,
                "ratio": finite(r.ratio()),
                "target": r.target_text(),
                "pass": r.pass(),
                "note": r.note,
            })
        })
        .collect();
    root.insert("rows".into(), Value::Array(rows));
    serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_default() + "\n"
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>4} {:>8} {:<18} {}\n",
        "row", "median", "min", "max", "runs", "ratio", "target", "result"
    );
    for r in rows {
        let result = match (r.available, r.pass()) {
            (false, _) => "not measured".to_string(),
            (_, Some(true)) => "pass".into(),
            (_, Some(false)) => "MISS".into(),
            (_, None) => "-".into(),
        };
        let min = r.samples.iter().cloned().reduce(f64::min);
        let max = r.samples.iter().cloned().reduce(f64::max);
        s.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} {:>4} {:>8} {:<18} {}\n",
            r.id,
            fmt(r.median()),
            fmt(min),
            fmt(max),
            r.samples.len(),
            fmt(r.ratio()),
            r.target_text(),
            result
        ));
    }
    s
}

pub fn svg(rows: &[Row]) -> String {
    let chart: Vec<&Row> = rows
        .iter()
        .filter(|r| r.chart && r.available && r.median().is_some())
        .collect();
    let max = chart
        .iter()
        .map(|r| {
            let t = match r.target {
                Some(Target::AtMost(v)) => v,
                _ => 0.0,
            };
            r.median().unwrap().max(t)
        })
        .fold(0.1f64, f64::max);
    let (left, width, bar_h, gap) = (230.0, 520.0, 22.0, 10.0);
    let height = 50.0 + chart.len() as f64 * (bar_h + gap);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Rebuild and start-up times (median seconds; | = target)</text>\n",
        left + width + 90.0
    );
    for (i, r) in chart.iter().enumerate() {
        let y = 35.0 + i as f64 * (bar_h + gap);
        let m = r.median().unwrap();
        let w = (m / max * width).max(1.0);
        let color = match r.pass() {
            Some(true) => "#3a8d4f",
            Some(false) => "#c0392b",
            None => "#6c7a89",
        };
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{}\">{:.2} s</text>\n",
            left - 8.0,
            y + 15.0,
            r.name,
            left + w + 6.0,
            y + 15.0,
            m
        ));
        if let Some(Target::AtMost(t)) = r.target {
            let x = left + t / max * width;
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\" stroke-width=\"2\"/>\n",
                y - 3.0,
                y + bar_h + 3.0
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn markdown(rows: &[Row], meta: &[(&str, String)], extra: &str) -> String {
    let mut s = String::from(
        "# Benchmarks\n\nGenerated by `cargo xtask bench` (do not edit by hand; rerun it). ",
    );
    s.push_str("Medians over the runs shown; ratios are measured against a peer or floor in the same run.\n\n");
    for (k, v) in meta {
        s.push_str(&format!("- **{k}**: {v}\n"));
    }
    s.push_str("\n![rebuild and start-up times](benchmarks.svg)\n\n");
    s.push_str("| # | row | median | min | max | runs | peer / floor | ratio | target | result | notes |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let result = match (r.available, r.pass()) {
            (false, _) => "not measured",
            (_, Some(true)) => "✅ pass",
            (_, Some(false)) => "❌ miss",
            (_, None) => "-",
        };
        let min = r.samples.iter().cloned().reduce(f64::min);
        let max = r.samples.iter().cloned().reduce(f64::max);
        let peer = if r.peer.is_empty() {
            "-".to_string()
        } else {
            format!("{}: {}", r.peer_name, fmt(median(&r.peer)))
        };
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.name,
            r.unit,
            fmt(r.median()),
            fmt(min),
            fmt(max),
            r.samples.len(),
            peer,
            fmt(r.ratio()),
            r.target_text(),
            result,
            r.note.replace('|', "\\|")
        ));
    }
    s.push_str(extra);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_verdicts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut r = Row::new("x", "x", "s");
        r.samples = vec![2.0, 4.0, 3.0];
        r.target = Some(Target::AtMost(3.0));
        assert_eq!(r.pass(), Some(true));
        r.peer = vec![2.0];
        r.target = Some(Target::RatioAtMost(1.3));
        assert_eq!(r.ratio(), Some(1.5));
        assert_eq!(r.pass(), Some(false));
        let u = Row::new("y", "y", "s").unavailable("no");
        assert_eq!(u.pass(), None);
    }

    #[test]
    fn reports_contain_every_row() {
        let mut a = Row::new("noop-rebuild", "no-op rebuild", "s");
        a.samples = vec![0.5];
        a.target = Some(Target::AtMost(3.0));
        a.chart = true;
        let b = Row::new("download", "download", "MB/s").unavailable("not measured: no curl");
        let rows = vec![a, b];
        let t = table(&rows);
        assert!(t.contains("noop-rebuild") && t.contains("pass") && t.contains("not measured"));
        let j: serde_json::Value =
            serde_json::from_str(&results_json(&rows, &[("date", "d\"q".into())])).unwrap();
        assert_eq!(j["date"], "d\"q");
        assert_eq!(j["rows"][0]["id"], "noop-rebuild");
        assert_eq!(j["rows"][0]["pass"], true);
        assert!(j["rows"][1]["pass"].is_null() && j["rows"][1]["median"].is_null());
        let m = markdown(&rows, &[], "");
        assert!(m.contains("| noop-rebuild |") && m.contains("benchmarks.svg"));
        let s = svg(&rows);
        assert!(s.starts_with("<svg") && s.contains("no-op rebuild") && !s.contains(">download<"));
    }
}
