//! Percentiles and the result of one run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Quantiles kept in a run's latency curve (for the plots).
pub(crate) const CURVE: &[f64] = &[
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// Sorted samples (microseconds) and quantiles of them.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    us: Vec<u64>,
}

impl Samples {
    /// Sorts `us`.
    pub(crate) fn new(mut us: Vec<u64>) -> Samples {
        us.sort_unstable();
        Samples { us }
    }

    /// The number of samples.
    pub(crate) fn len(&self) -> usize {
        self.us.len()
    }

    /// The `q` quantile (0..=1) in milliseconds, nearest rank; 0 when empty.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        if self.us.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.us.len() as f64).ceil() as usize).clamp(1, self.us.len());
        self.us[rank - 1] as f64 / 1000.0
    }

    /// Writes p50, p99, p99.9 and max under `prefix`.
    pub(crate) fn put(&self, result: &mut RunResult, prefix: &str) {
        result.metric(&format!("{prefix}_p50_ms"), self.ms(0.5));
        result.metric(&format!("{prefix}_p99_ms"), self.ms(0.99));
        result.metric(&format!("{prefix}_p999_ms"), self.ms(0.999));
        result.metric(&format!("{prefix}_max_ms"), self.ms(1.0));
    }

    /// The curve at [`CURVE`]'s quantiles, as (quantile, ms).
    pub(crate) fn curve(&self) -> Vec<(f64, f64)> {
        CURVE.iter().map(|&q| (q, self.ms(q))).collect()
    }
}

/// What one run of a scenario measured; written as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RunResult {
    /// The scenario (`idle`, `connect`, `echo`, `broadcast`, `polling`, `soak`).
    pub(crate) scenario: String,
    /// The cell name given by the runner (e.g. `idle-ws-10k`).
    pub(crate) cell: String,
    /// The server name given by the runner.
    pub(crate) server: String,
    /// Whether the scenario completed: every connection and operation succeeded.
    pub(crate) ok: bool,
    /// What went wrong, if anything.
    pub(crate) errors: Vec<String>,
    /// The parameters.
    pub(crate) params: BTreeMap<String, serde_json::Value>,
    /// The figures.
    pub(crate) metrics: BTreeMap<String, f64>,
    /// Latency curve (quantile, ms), for the plots.
    #[serde(default)]
    pub(crate) latency_curve: Vec<(f64, f64)>,
    /// Figures over time: one map per window (the soak), or per round (a broadcast's `round`,
    /// `first_ms` and `last_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) samples: Vec<BTreeMap<String, f64>>,
    /// The repetition the run belongs to: not written, the report reads it from the result
    /// file's name (`<cell>-<rep>.json`).
    #[serde(skip)]
    pub(crate) rep: Option<u32>,
}

impl RunResult {
    /// An empty result.
    pub(crate) fn new(scenario: &str, cell: &str, server: &str) -> RunResult {
        RunResult {
            scenario: scenario.to_owned(),
            cell: cell.to_owned(),
            server: server.to_owned(),
            ok: true,
            ..RunResult::default()
        }
    }

    /// Records a figure.
    pub(crate) fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_owned(), value);
    }

    /// Records a parameter.
    pub(crate) fn param(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.params.insert(name.to_owned(), value.into());
    }

    /// Records a failure (keeps the first few messages) and marks the run not ok.
    pub(crate) fn fail(&mut self, what: impl std::fmt::Display) {
        self.ok = false;
        if self.errors.len() < 8 {
            self.errors.push(what.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Samples::new((1..=1000).rev().map(|v| v * 1000).collect());
        assert_eq!(s.ms(0.5), 500.0);
        assert_eq!(s.ms(0.99), 990.0);
        assert_eq!(s.ms(0.999), 999.0);
        assert_eq!(s.ms(1.0), 1000.0);
        assert_eq!(s.ms(0.0), 1.0);
        assert_eq!(Samples::default().ms(0.5), 0.0);
    }
}
