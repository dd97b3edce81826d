//! The results table: each figure with its limit, the ratio and the target it is held to.

use crate::env::Env;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Row {
    pub section: &'static str,
    pub what: String,
    pub figure: String,
    pub limit: String,
    /// figure / limit, where the two are rates of the same work.
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

pub struct Report {
    rows: Vec<Row>,
    started: chrono::DateTime<chrono::Utc>,
    machine: String,
}

impl Report {
    pub fn new(env: &Env) -> Self {
        Self {
            rows: Vec::new(),
            started: chrono::Utc::now(),
            machine: env.machine(),
        }
    }

    /// Adds a row and prints it at once (a long run shows its progress).
    pub fn add(&mut self, row: Row) {
        println!(
            "[{}] {}: {} | limit {} | ratio {} | target {} {}",
            row.section,
            row.what,
            row.figure,
            row.limit,
            row.ratio.map_or("-".into(), |r| format!("{:.0} %", r * 100.0)),
            row.target,
            match row.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "",
            }
        );
        self.rows.push(row);
    }

    pub fn finish(&self, env: &Env) -> anyhow::Result<()> {
        let mut md = format!(
            "Measured {} on {}.\nCommand: `bench/run {}`\n\n",
            self.started.format("%Y-%m-%d %H:%M UTC"),
            self.machine,
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        md.push_str(
            "| section | what | figure | limit | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.section,
                r.what,
                r.figure,
                r.limit,
                r.ratio.map_or("—".into(), |x| format!("{:.0} %", x * 100.0)),
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                }
            ));
        }
        println!("\n{md}");
        std::fs::write(env.out.join("results.md"), &md)?;
        std::fs::write(
            env.out.join("results.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "started": self.started, "machine": self.machine, "rows": self.rows,
            }))?,
        )?;
        println!("written: {}", env.out.join("results.md").display());
        Ok(())
    }
}

/// `12 345/s`
pub fn rate(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    format!("{out}/s")
}

/// `1.23 ms`
pub fn ms(seconds: f64) -> String {
    if seconds < 0.001 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}
