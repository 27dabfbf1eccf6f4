//! The figures over many cold starts: median, min and max of each measure,
//! ratios of the medians to the baseline's, and the Markdown table.

use std::fmt::Write;

use crate::measure::ColdStart;

/// The target: each function's init within this many times the baseline's.
pub const TARGET_RATIO: f64 = 2.0;

/// Median, min and max of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` without samples. The median of an even count is the mean of the
    /// two middle samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// Everything measured of one binary.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub name: String,
    /// The binary's size on disk, in bytes.
    pub size: u64,
    /// The successful runs.
    pub runs: Vec<ColdStart>,
    /// AWS requests of each successful run (init and first invocation), as
    /// the emulator counted them.
    pub aws_requests: Vec<u64>,
    /// Runs that failed.
    pub failures: usize,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Measured {
    pub fn init_ms(&self) -> Option<Summary> {
        Summary::of(&self.runs.iter().map(|r| ms(r.init)).collect::<Vec<_>>())
    }

    pub fn invocation_ms(&self) -> Option<Summary> {
        Summary::of(&self.runs.iter().map(|r| ms(r.invocation)).collect::<Vec<_>>())
    }

    /// Init plus first invocation, run by run.
    pub fn total_ms(&self) -> Option<Summary> {
        Summary::of(
            &self
                .runs
                .iter()
                .map(|r| ms(r.init + r.invocation))
                .collect::<Vec<_>>(),
        )
    }

    pub fn aws_requests(&self) -> Option<Summary> {
        Summary::of(&self.aws_requests.iter().map(|&n| n as f64).collect::<Vec<_>>())
    }

    pub fn peak_rss_mib(&self) -> Option<Summary> {
        Summary::of(
            &self
                .runs
                .iter()
                .map(|r| r.peak_rss as f64 / (1024.0 * 1024.0))
                .collect::<Vec<_>>(),
        )
    }
}

fn spread(s: Option<Summary>) -> String {
    match s {
        Some(s) => format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max),
        None => "–".into(),
    }
}

/// A count: the median, with min–max only where runs differ.
fn count(s: Option<Summary>) -> String {
    match s {
        Some(s) if s.min == s.max => format!("{}", s.median),
        Some(s) => format!("{} ({}–{})", s.median, s.min, s.max),
        None => "–".into(),
    }
}

fn ratio(of: Option<Summary>, to: Option<Summary>) -> Option<f64> {
    match (of, to) {
        (Some(of), Some(to)) if to.median > 0.0 => Some(of.median / to.median),
        _ => None,
    }
}

/// The Markdown table: one row per binary, with the ratios of its medians to
/// those of `baseline` (a name among `results`).
pub fn table(results: &[Measured], baseline: &str) -> String {
    let base = results.iter().find(|m| m.name == baseline);
    let (base_init, base_total) = (
        base.and_then(Measured::init_ms),
        base.and_then(Measured::total_ms),
    );
    let mut out = String::new();
    out.push_str(
        "| binary | size, MB | init, ms | first invocation, ms | AWS requests | init + invocation, ms \
         | init ÷ baseline | (init + invocation) ÷ baseline | init within 2× | peak RSS, MiB | runs ok |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|\n");
    for m in results {
        let init_ratio = ratio(m.init_ms(), base_init);
        let total_ratio = ratio(m.total_ms(), base_total);
        let times = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}×"));
        let within = match init_ratio {
            Some(r) if r <= TARGET_RATIO => "yes",
            Some(_) => "**no**",
            None => "–",
        };
        let rss = m
            .peak_rss_mib()
            .map_or("–".into(), |s| format!("{:.1} (max {:.1})", s.median, s.max));
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            m.name,
            m.size as f64 / 1e6,
            spread(m.init_ms()),
            spread(m.invocation_ms()),
            count(m.aws_requests()),
            spread(m.total_ms()),
            times(init_ratio),
            times(total_ratio),
            within,
            rss,
            m.runs.len(),
            m.runs.len() + m.failures,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(samples: &[f64], expected: Option<(f64, f64, f64)>) {
        let got = Summary::of(samples).map(|s| (s.median, s.min, s.max));
        assert_eq!(got, expected, "{samples:?}");
    }

    #[test]
    fn summaries_take_the_middle_sample_or_the_mean_of_the_two_middle_ones() {
        check(&[], None);
        check(&[4.0], Some((4.0, 4.0, 4.0)));
        check(&[3.0, 1.0, 2.0], Some((2.0, 1.0, 3.0)));
        check(&[4.0, 1.0, 3.0, 2.0], Some((2.5, 1.0, 4.0)));
    }

    fn run(init_ms: u64, invocation_ms: u64) -> ColdStart {
        ColdStart {
            init: Duration::from_millis(init_ms),
            invocation: Duration::from_millis(invocation_ms),
            peak_rss: 3 * 1024 * 1024,
            response: "{}".into(),
        }
    }

    #[test]
    fn the_table_gives_ratios_to_the_baseline_and_flags_a_missed_target() {
        let results = [
            Measured {
                name: "hello".into(),
                size: 1_500_000,
                runs: vec![run(10, 1), run(10, 1)],
                aws_requests: vec![0, 0],
                failures: 0,
            },
            Measured {
                name: "slow".into(),
                size: 9_000_000,
                runs: vec![run(30, 11)],
                aws_requests: vec![7],
                failures: 1,
            },
            Measured {
                name: "broken".into(),
                size: 1,
                runs: vec![],
                aws_requests: vec![],
                failures: 2,
            },
        ];
        let table = table(&results, "hello");
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 5, "{table}");
        assert_eq!(
            rows[2],
            "| hello | 1.5 | 10.0 (10.0–10.0) | 1.0 (1.0–1.0) | 0 | 11.0 (11.0–11.0) | 1.00× | 1.00× | yes | 3.0 (max 3.0) | 2/2 |"
        );
        assert_eq!(
            rows[3],
            "| slow | 9.0 | 30.0 (30.0–30.0) | 11.0 (11.0–11.0) | 7 | 41.0 (41.0–41.0) | 3.00× | 3.73× | **no** | 3.0 (max 3.0) | 1/2 |"
        );
        assert_eq!(rows[4], "| broken | 0.0 | – | – | – | – | – | – | – | – | 0/2 |");
    }
}
